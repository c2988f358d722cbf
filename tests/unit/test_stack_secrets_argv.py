"""No password on a command line: `ps` shows every process's arguments to every user of the machine."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stack.kafka import KafkaBroker

PASSWORD = "Adm1n-pa55word-from-the-secrets-file"  # noqa: S105


def test_formatting_the_storage_puts_the_admin_password_in_an_owner_only_file_not_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], str, int]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        files = [Path(a[1:]) for a in cmd if a.startswith("@")]
        text = "".join(f.read_text() for f in files)
        modes = [stat.S_IMODE(f.stat().st_mode) for f in files]
        seen.append((cmd, text, max(modes, default=0)))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr("stack.kafka.subprocess.run", run)
    broker = KafkaBroker(tmp_path / "kafka", tmp_path / "jars", admin_password=PASSWORD)
    (tmp_path / "kafka").mkdir()
    broker._format_storage("Ab1_cluster-id")
    [(cmd, argfile, mode)] = seen
    assert not any(PASSWORD in arg for arg in cmd), cmd
    assert PASSWORD in argfile and "kafka.tools.StorageTool" in argfile
    assert mode == 0o600
    assert not [p for p in (tmp_path / "kafka").iterdir() if PASSWORD in p.read_text(errors="replace")], (
        "the argument file is removed after the format"
    )


def test_the_compose_broker_formats_without_the_password_on_its_command_line(repo_root: Path) -> None:
    script = (repo_root / "infra" / "kafka" / "compose-broker.sh").read_text()
    assert "kafka.tools.StorageTool format" in script
    commands = [line.strip() for line in script.replace("\\\n", " ").splitlines()]
    java = [c for c in commands if c.startswith(("java ", "exec java ")) or "$(java " in c]
    assert java and not [c for c in java if "$password" in c], "the password is an argument of java"
