"""The first `make` target on a fresh machine installs uv itself, also where the system Python is
"externally managed" (PEP 668: Debian 12 and Ubuntu 23.04 on refuse `pip install` outside a venv),
as the README promises: Python, Java and Maven are all a newcomer brings."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# a Debian-like python3: pip refuses system installs unless told to break them; `-m uv` works once
# pip has installed it; every call is logged
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$STATE/calls"
case "$*" in
  "-m uv --version") test -f "$STATE/uv" ;;
  "-m uv sync"*) test -f "$STATE/uv" && mkdir -p .venv ;;
  "-m pip install"*"--break-system-packages"*) touch "$STATE/uv" ;;
  "-m pip install"*) echo "error: externally-managed-environment" >&2; exit 1 ;;
  *) exit 2 ;;
esac
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_uv_is_installed_where_the_system_python_is_externally_managed(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state), "HOME": str(tmp_path)}
    assert shutil.which("uv", path=env["PATH"]) is None  # a machine without uv
    result = subprocess.run(
        ["make", "-s", ".venv/.installed"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (state / "calls").read_text().splitlines()
    assert any("--break-system-packages" in c and "--user" in c for c in calls), calls
    assert calls[-1].startswith("-m uv sync --frozen")
    assert (tmp_path / ".venv" / ".installed").exists()
    assert "externally-managed" not in result.stdout + result.stderr  # no scary line on success
