"""An MLflow tracking server (SQLite backend store, local artifact store served by the server).

With `admin_password` it runs MLflow's basic-auth app: every request needs a user, `admin` is the
first one, and other users read what they did not create (default permission READ) and manage
what they did (`add_users`: `trainer` logs, registers and promotes models, `serving` loads them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.errors import ServiceError
from core.ports import port_free, require_free
from stack.process import ManagedProcess, check_running, wait_until

log = logging.getLogger(__name__)
ADMIN = "admin"


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
            if self._mode().exists() and self._mode().read_text() == self._wanted_mode():
                log.info("mlflow server already running at %s", self.uri)
                return 0.0
            log.info(
                "mlflow server: restarting it to turn authentication %s",
                "on" if self.admin_password else "off",
            )
            self.stop()
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
        self._mode().write_text(self._wanted_mode())
        waited = wait_until(self._ready, timeout_s, f"mlflow server at {self.uri}", self.process.log_file)
        check_running(self.process)
        log.info("mlflow server healthy at %s after %.1f s", self.uri, waited)
        return waited

    def stop(self) -> bool:
        return self.process.stop()

    def healthy(self) -> bool:
        return self.process.pid() is not None and _health(self.uri)

    def serves_elsewhere(self) -> bool:
        """An MLflow server not started by us already answers at our address."""
        return self.process.pid() is None and not port_free(self.host, self.port) and _health(self.uri)

    def admin_answers(self) -> bool:
        """Our admin's password works here: an authenticating server we may make users on."""
        if not self.admin_password:
            return False
        try:
            return self._admin_call("GET", "2.0/mlflow/users/get", {"username": ADMIN})[0] == 200
        except OSError:  # not answering at all
            return False

    def _ready(self) -> bool:
        if self.process.exited():
            raise ServiceError(f"mlflow server exited during start-up; see {self.process.log_file}")
        return _health(self.uri)

    def _mode(self) -> Path:
        return self.home / "auth-mode"

    def _wanted_mode(self) -> str:
        return "basic-auth" if self.admin_password else "open"

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
        for user, password in passwords.items():
            status, text = self._admin_call(
                "POST", "2.0/mlflow/users/create", {"username": user, "password": password}
            )
            if status != 200 and "already exists" not in text:
                raise ServiceError(f"cannot create MLflow user {user}: HTTP {status} {text[:200]}")

    def grant(self, user: str, experiment: str, model: str) -> None:
        """Let `user` manage `experiment` and registered `model` where they exist already (made before
        authentication was on: nobody owns them, so other users could only read them)."""
        grants = []
        status, text = self._admin_call(
            "GET", "2.0/mlflow/experiments/get-by-name", {"experiment_name": experiment}
        )
        if status == 200:
            grants.append(("experiment", json.loads(text)["experiment"]["experiment_id"]))
        if self._admin_call("GET", "2.0/mlflow/registered-models/get", {"name": model})[0] == 200:
            grants.append(("registered_model", model))
        for kind, resource in grants:
            body = {"username": user, "resource_type": kind, "resource_id": resource, "permission": "MANAGE"}
            status, text = self._admin_call("POST", "3.0/mlflow/users/permissions/grant", body)
            if status != 200 and "already exists" not in text:
                raise ServiceError(
                    f"cannot let MLflow user {user} manage {kind} {resource}: HTTP {status} {text[:200]}"
                )

    def _admin_call(self, method: str, path: str, body: dict[str, str]) -> tuple[int, str]:
        """One REST call to the server as the admin: (HTTP status, body text)."""
        url, data = f"{self.uri}/api/{path}", None
        if method == "GET":
            url += "?" + urllib.parse.urlencode(body)
        else:
            data = json.dumps(body).encode()
        token = base64.b64encode(f"{ADMIN}:{self.admin_password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        request = urllib.request.Request(url, data, headers, method=method)  # noqa: S310 - our http URI
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def _db(self) -> Path:
        return self.home.resolve() / "mlflow.db"


def _health(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:  # noqa: S310 - http(s) URI we built
            return bool(resp.status == 200)
    except OSError:
        return False
