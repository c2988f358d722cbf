"""Background processes of the local stack: pid files, liveness, ports, clean stop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import ServiceError

log = logging.getLogger(__name__)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, log_file: Path | None = None) -> float:
    """Poll `check` until it is true; return seconds waited or raise `ServiceError` naming the log."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    where = f"; see {log_file}" if log_file else ""
    raise ServiceError(f"{what} did not become healthy within {timeout_s:.0f} s{where}")


@dataclass(frozen=True)
class ManagedProcess:
    """A process started in its own session, recorded in a pid file; `marker` must be in its cmdline."""

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        """The live pid of this process, or None; a stale pid file is removed."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:  # empty for an instant while a just-started process execs: that still counts as ours
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmdline = "<gone>"
        if not _alive(pid) or (cmdline and self.marker not in cmdline):
            log.info("removing stale pid file %s (pid %d is not %s)", self.pid_file, pid, self.name)
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, cmd: Sequence[str], env: dict[str, str] | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603
                list(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def exited(self) -> bool:
        """True once the recorded process has gone (so waiting for health can stop early)."""
        return self.pid() is None

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group, SIGKILL after `timeout_s`; False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL", self.name, pid, timeout_s)
            self._signal(pid, signal.SIGKILL)
            wait_until(lambda: not _alive(pid), 10, f"{self.name} exit")
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def check_running(proc: ManagedProcess) -> int:
    pid = proc.pid()
    if pid is None:
        raise ServiceError(f"{proc.name} exited during start-up; see {proc.log_file}")
    return pid
