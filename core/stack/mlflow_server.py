"""An MLflow tracking server (SQLite backend store, local artifact store served by the server)."""

from __future__ import annotations

import logging
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.errors import ServiceError
from core.stack.process import ManagedProcess, check_running, require_free, wait_until

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MlflowServer:
    """One `mlflow server` whose database, artifacts, log and pid file all live under `home`."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 5000

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
        self.process.start(cmd, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
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

    def _db(self) -> Path:
        return self.home.resolve() / "mlflow.db"


def _health(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:  # noqa: S310 - http(s) URI we built
            return bool(resp.status == 200)
    except OSError:
        return False
