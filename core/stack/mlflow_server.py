"""An MLflow tracking server (SQLite backend store, local artifact store served by the server).

With `admin_password` it runs MLflow's basic-auth app: every request needs a user, `admin` is the
first one, and other users read what they did not create (default permission READ) and manage
what they did (`add_users`: `trainer` logs, registers and promotes models, `serving` loads them).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import ServiceError
from core.stack.process import ManagedProcess, check_running, require_free, wait_until

log = logging.getLogger(__name__)
ADMIN = "admin"


@contextmanager
def _as_user(user: str, password: str) -> Iterator[None]:
    """MLflow's client takes its credentials from the environment."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class MlflowServer:
    """One `mlflow server` whose database, artifacts, log and pid file all live under `home`."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 5000
    admin_password: str = ""  # "": no authentication

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "mlflow server", self.home / "mlflow.pid", self.home / "mlflow.log", marker=str(self._db())
        )

    def start(self, timeout_s: float = 60.0) -> float:
        """Start (or find running) and wait until `/health` answers; return seconds taken."""
        if self.process.pid() is not None:
            log.info("mlflow server already running at %s", self.uri)
            return 0.0
        require_free(self.host, self.port, "LOANS_STACK_MLFLOW_PORT")
        artifacts = self.home.resolve() / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self._db()}",
            "--artifacts-destination",
            artifacts.as_uri(),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        if self.admin_password:
            cmd += ["--app-name", "basic-auth"]
            env |= {
                "MLFLOW_AUTH_CONFIG_PATH": str(self._auth_config()),
                "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
                # CSRF protection of the auth app's forms: stable across restarts, secret as the password
                "MLFLOW_FLASK_SERVER_SECRET_KEY": hashlib.sha256(
                    f"csrf:{self.admin_password}".encode()
                ).hexdigest(),
            }
        self.process.start(cmd, env=env)
        waited = wait_until(self._ready, timeout_s, f"mlflow server at {self.uri}", self.process.log_file)
        check_running(self.process)
        log.info("mlflow server healthy at %s after %.1f s", self.uri, waited)
        return waited

    def stop(self) -> bool:
        return self.process.stop()

    def healthy(self) -> bool:
        return self.process.pid() is not None and _health(self.uri)

    def _ready(self) -> bool:
        if self.process.exited():
            raise ServiceError(f"mlflow server exited during start-up; see {self.process.log_file}")
        return _health(self.uri)

    def _auth_config(self) -> Path:
        path = self.home.resolve() / "basic_auth.ini"
        path.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{self.home.resolve() / 'auth.db'}\nadmin_username = {ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        return path

    def add_users(self, passwords: dict[str, str]) -> None:
        """Create each user (e.g. trainer, serving) unless it exists, as the admin."""
        from mlflow.exceptions import MlflowException
        from mlflow.server.auth.client import AuthServiceClient

        with _as_user(ADMIN, self.admin_password):
            client = AuthServiceClient(self.uri)
            for user, password in passwords.items():
                try:
                    client.create_user(user, password)
                except MlflowException as exc:
                    if "already exists" not in str(exc):
                        raise ServiceError(f"cannot create MLflow user {user}: {exc}") from exc

    def _db(self) -> Path:
        return self.home.resolve() / "mlflow.db"


def _health(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:  # noqa: S310 - http(s) URI we built
            return bool(resp.status == 200)
    except OSError:
        return False
