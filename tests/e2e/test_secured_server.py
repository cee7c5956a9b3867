"""The tracking server with access control and TLS (scripts/mlflow-server.sh --auth --tls).

One server per module: MLflow's basic-auth app behind HTTPS with a self-signed certificate
made here, the admin's credentials from the environment, ``default_permission =
NO_PERMISSIONS``. The pipeline runs on the sample as a non-admin user with its credentials
(``MLFLOW_TRACKING_USERNAME``/``PASSWORD``) and the certificate
(``MLFLOW_TRACKING_SERVER_CERT_PATH``) in the environment, and registers a model; a user
granted READ on that model cannot move its alias.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client
from mlflow.tracking import MlflowClient

from sparkmlops.config import Settings, load_settings
from sparkmlops.ingest.step import default_batch_id
from sparkmlops.pipeline.step import PipelineResult, run_pipeline
from sparkmlops.pipeline.summary import pipeline_summary
from sparkmlops.tracking.registry import CHAMPION
from tests.e2e.conftest import free_port, run_script

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

MODEL = "penguins_secured"
SEARCH = "/api/2.0/mlflow/experiments/search"


@dataclass(frozen=True)
class SecuredServer:
    uri: str
    cert: Path
    state: Path
    admin: tuple[str, str]

    def as_user(self, monkeypatch: pytest.MonkeyPatch, user: tuple[str, str]) -> None:
        """MLflow's client variables as a job would set them: this user, this CA."""
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(self.cert))


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredServer]:
    tls = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(tls)
    state = tmp_path_factory.mktemp("mlflow_secured")
    admin = ("platform-admin", secrets.token_urlsafe(18))
    # the server runs in this interpreter's environment (the one with mlflow[auth])
    env = {"SPARKMLOPS_VENV": sys.prefix, "SPARKMLOPS_MLFLOW_ADMIN_USER": admin[0],
           "SPARKMLOPS_MLFLOW_ADMIN_PASSWORD": admin[1],
           "SPARKMLOPS_MLFLOW_DEFAULT_PERMISSION": "NO_PERMISSIONS"}
    try:
        uri = run_script("mlflow-server.sh", "start", str(state), str(free_port()),
                         "--auth", "--tls", str(cert), str(key), env=env)
        yield SecuredServer(uri, cert, state, admin)
    finally:
        run_script("mlflow-server.sh", "stop", str(state))


@dataclass(frozen=True)
class SecuredRun:
    settings: Settings
    result: PipelineResult
    pipeline_user: tuple[str, str]


@pytest.fixture(scope="module")
def secured_run(spark, server: SecuredServer,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRun]:
    """The pipeline on the sample, as the non-admin user ``pipeline``, with the server's
    URI and the user's credentials only in the environment."""
    previous_uri, variable = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    pipeline_user = ("pipeline", secrets.token_urlsafe(18))
    with pytest.MonkeyPatch.context() as env:
        server.as_user(env, server.admin)
        get_app_client("basic-auth", tracking_uri=server.uri).create_user(*pipeline_user)
        server.as_user(env, pipeline_user)
        env.setenv("MLFLOW_TRACKING_URI", server.uri)
        state_dir = tmp_path_factory.mktemp("secured_run")
        settings = load_settings("local", "penguins", overrides=[
            f"state_dir={state_dir}", f"dataset.model.name={MODEL}"])
        result = run_pipeline(spark, settings, default_batch_id(spark, settings))
        yield SecuredRun(settings, result, pipeline_user)
    # set_tracking_uri exports the URI into $MLFLOW_TRACKING_URI: that is put back too
    mlflow.set_tracking_uri(previous_uri)
    if variable is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = variable


def test_requests_without_valid_credentials_or_the_ca_are_refused(server):
    assert server.uri.startswith("https://127.0.0.1:")
    no_credentials = requests.get(server.uri + SEARCH, params={"max_results": 1},
                                  verify=server.cert, timeout=30)
    wrong_password = requests.get(server.uri + SEARCH, params={"max_results": 1},
                                  auth=(server.admin[0], "not-the-password"),
                                  verify=server.cert, timeout=30)
    admin = requests.get(server.uri + SEARCH, params={"max_results": 1},
                         auth=server.admin, verify=server.cert, timeout=30)

    assert (no_credentials.status_code, wrong_password.status_code) == (401, 401)
    assert admin.status_code == 200
    # a client that does not trust the self-signed certificate does not talk to it
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.uri + "/health", timeout=30)
    # the admin password is in the server's environment only: no file of the state dir
    # holds it (the auth db keeps a salted hash), and the auth config is the owner's alone
    files = [p for p in server.state.rglob("*") if p.is_file()]
    assert [p.name for p in files if server.admin[1].encode() in p.read_bytes()] == []
    ini = server.state / "basic_auth.ini"
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    assert "default_permission = NO_PERMISSIONS" in ini.read_text().splitlines()


def test_the_pipeline_registers_a_champion_with_credentials_from_the_environment(
        spark, secured_run, server, monkeypatch, tmp_path):
    server.as_user(monkeypatch, server.admin)
    client = MlflowClient(tracking_uri=server.uri)
    champion = client.get_model_version_by_alias(MODEL, CHAMPION)
    run = client.get_run(secured_run.result.parent_run_id)

    assert champion.version == "1"
    assert run.info.status == "FINISHED"
    assert champion.run_id in {step.run_id for step in secured_run.result.steps}
    # the pipeline user created the experiment and the model, so it manages both (the
    # server grants nobody else anything: default_permission = NO_PERMISSIONS)
    auth = get_app_client("basic-auth", tracking_uri=server.uri)
    user = secured_run.pipeline_user[0]
    assert auth.get_user_permission(user, "registered_model", MODEL).permission == "MANAGE"
    assert auth.get_user_permission(user, "experiment",
                                    run.info.experiment_id).permission == "MANAGE"
    # the password of the environment reached neither the server's store and artifacts nor
    # the run's lake; the effective config names the server, without credentials
    password = secured_run.pipeline_user[1].encode()
    for root in (server.state, Path(secured_run.settings.state_dir)):
        assert [str(p) for p in root.rglob("*") if p.is_file()
                if password in p.read_bytes()] == []
    effective = json.loads(Path(client.download_artifacts(
        champion.run_id, "config/effective_config.json", str(tmp_path))).read_text())
    assert effective["tracking"]["tracking_uri"] == server.uri
    summary = pipeline_summary(spark, secured_run.settings, secured_run.result).splitlines()
    assert (f"  MLflow UI:  open {server.uri}/#/experiments/{run.info.experiment_id}/runs/"
            f"{run.info.run_id}?workflowType=machine_learning") in summary
    assert [line for line in summary if password.decode() in line] == []


def test_a_reader_cannot_move_the_champion_alias(secured_run, server, monkeypatch):
    reader = ("reader", secrets.token_urlsafe(18))
    server.as_user(monkeypatch, server.admin)
    admin_client = MlflowClient(tracking_uri=server.uri)
    auth = get_app_client("basic-auth", tracking_uri=server.uri)
    auth.create_user(*reader)
    auth.grant_user_permission(reader[0], "registered_model", MODEL, "READ")
    champion = admin_client.get_model_version_by_alias(MODEL, CHAMPION)
    # a second version of the same model: somewhere the reader would like @champion to go
    other = admin_client.create_model_version(MODEL, champion.source, run_id=champion.run_id)

    server.as_user(monkeypatch, reader)
    reader_client = MlflowClient(tracking_uri=server.uri)
    seen = reader_client.get_model_version_by_alias(MODEL, CHAMPION)
    with pytest.raises(MlflowException) as moved:
        reader_client.set_registered_model_alias(MODEL, CHAMPION, other.version)
    with pytest.raises(MlflowException) as deleted:
        reader_client.delete_registered_model_alias(MODEL, CHAMPION)

    assert seen.version == champion.version == "1"
    assert other.version == "2"
    assert (moved.value.error_code, deleted.value.error_code) == (
        "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert (moved.value.get_http_status_code(),
            deleted.value.get_http_status_code()) == (403, 403)
    server.as_user(monkeypatch, server.admin)
    assert admin_client.get_model_version_by_alias(MODEL, CHAMPION).version == "1"
