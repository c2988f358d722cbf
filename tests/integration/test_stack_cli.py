"""`loans-stack up/status/down` as a user runs them (subprocesses, own ports and folder)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.stack.process import free_port

pytestmark = pytest.mark.integration


def _stack(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.stack", command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=180,
    )


def _our_processes(home: Path) -> list[str]:
    """Command lines of live processes that mention the stack's home folder."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(home.resolve()) in args:
            found.append(args)
    return found


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LOANS_PATHS_HOME": str(tmp_path / "home"),
        "LOANS_STACK_KAFKA_PORT": str(free_port()),
        "LOANS_STACK_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LOANS_STACK_MLFLOW_PORT": str(free_port()),
    }


@pytest.fixture
def home(tmp_path: Path, repo_root: Path) -> Path:
    """The stack's home folder, sharing the repo's jar cache so Maven is not asked again."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "jars").symlink_to(repo_root / ".loans" / "jars")
    return home


def test_up_twice_status_down_leaves_nothing(stack_env: dict[str, str], home: Path) -> None:
    try:
        first = _stack("up", stack_env)
        assert first.returncode == 0, first.stderr
        assert "kafka broker healthy" in first.stderr
        pids = set(_our_processes(home))
        assert len(pids) >= 2

        second = _stack("up", stack_env)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        assert set(_our_processes(home)) == pids  # no second broker

        status = _stack("status", stack_env)
        assert status.returncode == 0
        assert status.stdout.count("healthy") == 2
    finally:
        down = _stack("down", stack_env)
    assert down.returncode == 0
    assert _our_processes(home) == []
    assert _stack("status", stack_env).returncode == 1


def test_port_taken_by_someone_else_is_one_clear_line(stack_env: dict[str, str], home: Path) -> None:
    port = int(stack_env["LOANS_STACK_KAFKA_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = _stack("up", stack_env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is already taken by another process; "
        "stop it or set LOANS_STACK_KAFKA_PORT to a free port"
    )
    assert _our_processes(home) == []
