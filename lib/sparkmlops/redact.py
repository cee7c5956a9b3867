"""The one redaction of everything logged: no secret reaches MLflow or a log line.

Config travels to MLflow as the effective config artifact, params, tags and error
messages, and to the log as the odd warning. All of it passes ``redact`` first, which
replaces with ``REDACTED``:

- the password of a URI (``https://alice:<pw>@host`` → ``https://alice:***REDACTED***@host``),
  and a user-info without a password too (``https://<token>@host``), except on the Azure
  storage schemes, where ``container@account`` names a place, not a credential;
- the value of a secret-looking query parameter (``?token=``, ``&sig=``, ``;password=``);
- the text value of a secret-looking key (``spark.hadoop.fs.s3a.secret.key``,
  ``fs.azure.account.key.<account>.dfs.core.windows.net``, ``MLFLOW_TRACKING_TOKEN``).

A key looks secret by its words, not its letters: a key is split into words at dots,
dashes, underscores and camelCase humps, and is secret when one word is a secret word
(``SECRET_WORDS``; ``key`` is one, ``keys`` is not: ``keys``, ``item_keys`` and
``repeated_keys`` name columns and a policy) and its last word does not say the value only
names or locates a secret (``..._arn``, ``...provider``, ``...auth.type``,
``...secret.file``). Only text is replaced (a secret key's text, or the texts of its
list): a mapping under a secret key is walked like any other
(``deploy.secrets.MLFLOW_TRACKING_TOKEN`` holds the secret's reference, not its value),
and numbers and booleans stay (a share in a profile of a column named ``token`` is not a
secret).

Example::

    redact({"tracking_uri": "https://alice:pw@mlflow.example.com",
            "conf": {"spark.hadoop.fs.s3a.secret.key": "abc", "spark.sql.shuffle.partitions": "2"}})
    # {"tracking_uri": "https://alice:***REDACTED***@mlflow.example.com",
    #  "conf": {"spark.hadoop.fs.s3a.secret.key": "***REDACTED***",
    #           "spark.sql.shuffle.partitions": "2"}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar, cast

REDACTED = "***REDACTED***"

T = TypeVar("T")

# words of a key name that say its value is a secret (compounds spelt without separators too)
SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "tokens",
    "credential", "credentials", "key", "apikey", "accesskey", "secretkey", "privatekey",
    "accesstoken", "sastoken", "clientsecret", "sas", "sig", "signature", "auth",
    "authorization", "cookie",
})
# last words that say the value only names or locates a secret, or how one is used
REFERENCE_WORDS = frozenset({
    "arn", "provider", "providers", "type", "class", "impl", "file", "path", "name", "names",
    "scope", "column", "columns", "enabled", "algorithm", "mode",
})
# Azure storage URIs: container@account.<service>.core.windows.net, no credential
_PLACE_AT_HOST_SCHEMES = ("wasb", "wasbs", "abfs", "abfss")

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^/\s@?#]+)@")
_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#\s]*)")


def key_words(key: str) -> list[str]:
    """The lower-case words of a key name: ``secretAccessKey`` → secret, access, key."""
    return [word.lower() for word in _WORD.findall(key)]


def is_secret_key(key: str) -> bool:
    """True when ``key`` names a value that is a secret (see the module's doc)."""
    words = key_words(key)
    return (bool(words) and words[-1] not in REFERENCE_WORDS
            and any(word in SECRET_WORDS for word in words))


def redact_text(text: str) -> str:
    """``text`` with the credentials of every URI in it replaced (user-info, query
    parameters); the rest of the text as it was."""
    text = _USERINFO.sub(_redacted_userinfo, text)
    return _PARAMETER.sub(_redacted_parameter, text)


def redact(value: T) -> T:
    """``value`` (text, or mappings and lists of them, nested) with every secret replaced:
    credentials in URIs anywhere, and the text value of every secret-looking key."""
    return cast(T, _redact(value, secret=False))


def redact_pair(key: str, value: str) -> str:
    """The value of one ``key=value`` setting as it may be logged."""
    return REDACTED if is_secret_key(key) else redact_text(value)


def _redact(value: object, *, secret: bool) -> object:
    if isinstance(value, str):
        return REDACTED if secret else redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact(v, secret=isinstance(k, str) and is_secret_key(k))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        # the items of a list under a secret key are secrets too (a list of tokens); a
        # tuple comes back a list, as JSON would have it
        return [_redact(item, secret=secret) for item in value]
    return value


def _redacted_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match["scheme"], match["userinfo"]
    user, colon, _password = userinfo.partition(":")
    if colon:
        return f"{scheme}://{user}:{REDACTED}@"
    if scheme.lower() in _PLACE_AT_HOST_SCHEMES:
        return match.group(0)
    return f"{scheme}://{REDACTED}@"


def _redacted_parameter(match: re.Match[str]) -> str:
    if not is_secret_key(match["name"]):
        return match.group(0)
    return f"{match['lead']}{match['name']}={REDACTED}"
