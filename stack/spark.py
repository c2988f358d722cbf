"""A Spark standalone cluster on this machine (`make spark-app-cluster`): one master and N workers
from pyspark's own `spark-class`, on loopback, state and logs under `home`; the project's wheel; and
the `spark-submit` command that sends the job to it in client mode with that wheel and the
connector jars from the local cache.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.errors import ServiceError
from core.ports import require_free
from stack import jars
from stack.process import ManagedProcess, check_running, wait_until

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]  # the project: sparky/cli.py, pyproject.toml


@dataclass(frozen=True)
class SparkStandalone:
    """A master at spark://host:port (web UI at ui_port) and `workers` workers of `worker_cores`
    task slots each (threads: a real-time query holds one per input partition)."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 7077
    ui_port: int = 8080
    workers: int = 2
    worker_cores: int = 3
    worker_memory: str = "2g"

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def ui(self) -> str:
        return f"http://{self.host}:{self.ui_port}"

    def processes(self) -> list[ManagedProcess]:
        names = ["spark master", *(f"spark worker {i}" for i in range(1, self.workers + 1))]
        return [
            ManagedProcess(
                name,
                self.home / f"{name.split()[-1]}.pid",
                self.home / f"{name.split()[-1]}.log",
                marker=str(self._conf()),
            )  # fmt: skip
            for name in names
        ]

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the master and the workers unless running; wait until every worker has registered."""
        master, *workers = self.processes()
        if master.pid() is None:
            require_free(self.host, self.port, "LOANS_STACK_SPARK_MASTER_PORT")
            require_free(self.host, self.ui_port, "LOANS_STACK_SPARK_UI_PORT")
            self._write_conf()
            cmd = self._cmd("org.apache.spark.deploy.master.Master", "--host", self.host,
                            "--port", str(self.port), "--webui-port", str(self.ui_port))  # fmt: skip
            master.start(cmd, self._env())
        for i, worker in enumerate(workers, start=1):
            if worker.pid() is None:
                work = self.home / f"work-{i}"
                work.mkdir(parents=True, exist_ok=True)
                cmd = self._cmd("org.apache.spark.deploy.worker.Worker", "--host", self.host,
                                "--webui-port", str(self.ui_port + i), "--cores", str(self.worker_cores),
                                "--memory", self.worker_memory, "--work-dir", str(work),
                                self.master_url)  # fmt: skip
                worker.start(cmd, self._env())
        waited = wait_until(self._ready, timeout_s, f"spark master at {self.master_url}", master.log_file)
        for process in self.processes():
            check_running(process)
        log.info("spark standalone: master %s (UI %s), %d workers after %.1f s",
                 self.master_url, self.ui, self.workers, waited)  # fmt: skip

    def stop(self) -> bool:
        return any([p.stop() for p in self.processes()[::-1]])

    def alive_workers(self) -> int:
        """Workers the master counts as alive (0 when it does not answer)."""
        try:
            with urllib.request.urlopen(f"{self.ui}/json/", timeout=2) as resp:  # noqa: S310 - our http URI
                state = json.load(resp)
        except (OSError, ValueError):
            return 0
        return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))

    def _ready(self) -> bool:
        for process in self.processes():
            if process.exited():
                raise ServiceError(f"{process.name} exited during start-up; see {process.log_file}")
        return self.alive_workers() >= self.workers

    def _conf(self) -> Path:
        return self.home.resolve() / "spark-standalone.conf"

    def _write_conf(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._conf().write_text(
            "spark.ui.reverseProxy false\n"
            "spark.worker.cleanup.enabled true\n"  # finished applications' folders are removed
        )

    def _cmd(self, main: str, *args: str) -> list[str]:
        return [str(_bin("spark-class")), main, "--properties-file", str(self._conf()), *args]

    def _env(self) -> dict[str, str]:
        # loopback only: the master's and workers' RPC and web UIs bind here, not on every interface
        return {"SPARK_LOCAL_IP": self.host, "SPARK_LOG_DIR": str(self.home.resolve())}


def build_wheel(dist: Path) -> Path:
    """The project's wheel, built afresh into `dist` with uv (`UV`: how the Makefile runs uv)."""
    uv = shlex.split(os.environ.get("UV", "")) or [shutil.which("uv") or "uv"]
    shutil.rmtree(dist, ignore_errors=True)
    cmd = [*uv, "build", "--wheel", "--quiet", "--out-dir", str(dist)]
    if subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0:  # noqa: S603 - uv, our own arguments
        raise ServiceError(f"building the project's wheel failed: {' '.join(cmd)}")
    return next(dist.glob("*.whl"))


def submit_command(cluster: SparkStandalone, jar_dir: Path, wheel: Path, args: list[str]) -> list[str]:
    """`spark-submit` of the job (sparky/cli.py) to `cluster` in client mode: the project's code goes
    to the executors as the wheel (on their Python path as a zip), the connector jars from the cache;
    executors run this environment's Python (on one machine, or an image every node shares)."""
    code = wheel.with_suffix(".zip")  # pyspark puts .zip/.egg on the executors' path, not .whl
    shutil.copyfile(wheel, code)
    entry = ROOT / "sparky" / "cli.py"
    return [
        str(_bin("spark-submit")),
        "--master", cluster.master_url,
        "--deploy-mode", "client",
        "--jars", ",".join(str(j) for j in jars.spark_jars(jar_dir)),
        "--py-files", str(code),
        "--conf", f"spark.pyspark.python={sys.executable}",
        "--conf", "spark.log.level=WARN",  # the job sets its own level once up; spark-submit's is INFO
        str(entry), *args,
    ]  # fmt: skip


def _bin(name: str) -> Path:
    """A script of pyspark's (spark-class, spark-submit) installed beside this Python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ServiceError(f"{name} not found beside {sys.executable}; run `make install`")
    return path
