"""Secrets by reference: a job reads its credentials from the platform's secret store.

A job definition never holds a secret's value. On Databricks the job cluster's env holds
``{{secrets/<scope>/<key>}}``, which the platform resolves itself. On EMR the step's env
holds ``SPARKMLOPS_AWS_SECRETS``, a comma-separated list of ``NAME=<Secrets Manager ARN>``;
``resolve_aws_secrets`` reads each secret at the start of the job (with the instance
profile's or the execution role's credentials) and puts its value in ``os.environ[NAME]``,
before config or MLflow read it. A variable already set in the environment wins.

Example::

    os.environ["SPARKMLOPS_AWS_SECRETS"] = (
        "MLFLOW_TRACKING_TOKEN=arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow-AbCdEf")
    resolve_aws_secrets()  # os.environ["MLFLOW_TRACKING_TOKEN"] now holds the token
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from sparkmlops.errors import ConfigError

log = logging.getLogger(__name__)

AWS_SECRETS_ENV = "SPARKMLOPS_AWS_SECRETS"
ENV_NAME = r"[A-Z_][A-Z0-9_]*"
# the pattern of a Secrets Manager ARN, not a secret (bandit reads "SECRET =" as a password)
SECRET_ARN = r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+"  # nosec B105
_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):")


class SecretUnavailableError(ConfigError):
    """A referenced secret cannot be read (no such secret, access denied, no network)."""


def aws_secrets_value(references: Mapping[str, str]) -> str:
    """The ``SPARKMLOPS_AWS_SECRETS`` value for ``{NAME: arn}``: ``NAME=arn,...``.

    Secret names never hold a comma, and an env name never holds ``=``."""
    return ",".join(f"{name}={arn}" for name, arn in references.items())


def parse_aws_secrets(value: str) -> dict[str, str]:
    """``NAME=arn,...`` → ``{NAME: arn}``; a malformed entry is one ConfigError line."""
    references: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, arn = entry.partition("=")
        if not re.fullmatch(ENV_NAME, name) or not re.fullmatch(SECRET_ARN, arn):
            raise ConfigError(f"{AWS_SECRETS_ENV}: {entry!r} is not NAME=<Secrets Manager "
                              "ARN> (arn:aws:secretsmanager:<region>:<account>:secret:<name>)")
        references[name] = arn
    return references


def resolve_aws_secrets(environ: MutableMapping[str, str] | None = None, *,
                        client_for: Callable[[str], Any] | None = None) -> list[str]:
    """Put the value of every secret named in ``$SPARKMLOPS_AWS_SECRETS`` into the env.

    Returns the names set. ``client_for(region)`` makes the Secrets Manager client
    (default: botocore's, which honours ``AWS_ENDPOINT_URL``); each ARN's own region is
    used, so one job can read a secret of another region.
    """
    env = os.environ if environ is None else environ
    references = parse_aws_secrets(env.get(AWS_SECRETS_ENV, ""))
    make_client = client_for or _botocore_client
    resolved: list[str] = []
    for name, arn in references.items():
        if env.get(name):
            log.info("secret %s: already set in the environment, %s not read", name, arn)
            continue
        region = _region(arn)
        try:
            reply = make_client(region).get_secret_value(SecretId=arn)
        except Exception as exc:  # noqa: BLE001 - botocore's errors, one line each
            raise SecretUnavailableError(
                f"secret {name}: cannot read {arn}: {type(exc).__name__}: {exc}") from None
        value = reply.get("SecretString")
        if not value:
            raise SecretUnavailableError(f"secret {name}: {arn} holds no SecretString "
                                         "(a binary secret cannot go into an env variable)")
        env[name] = value
        resolved.append(name)
        log.info("secret %s: read from %s", name, arn)
    return resolved


def _region(arn: str) -> str:
    match = _ARN_REGION.match(arn)
    assert match is not None  # parse_aws_secrets checked the ARN
    return match.group(1)


def _botocore_client(region: str) -> Any:
    try:
        import botocore.session
    except ImportError:
        raise SecretUnavailableError(
            f"{AWS_SECRETS_ENV} is set but botocore is not installed: install "
            "'sparkmlops[aws]' on the cluster (the generated bootstrap does)") from None
    return botocore.session.get_session().create_client("secretsmanager", region_name=region)
