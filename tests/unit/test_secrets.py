"""The local secrets file: made owner-only by `make up`, read by settings, rotated with a new version."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from core.settings import SECRETS_FILE, GeneratorSettings
from stack import secrets


def test_made_once_owner_only_and_rotated_with_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    assert secrets.ensure(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = secrets.read(path)
    assert len(first[secrets.KEY]) >= 40 and first[secrets.VERSION] == "1"
    assert not secrets.ensure(path) and secrets.read(path) == first  # never replaced by `make up`
    path.write_text(path.read_text() + "OTHER=kept\n")
    path.chmod(0o644)
    assert secrets.rotate_ssn_key(path) == 2
    rotated = secrets.read(path)
    assert rotated[secrets.KEY] != first[secrets.KEY] and rotated["OTHER"] == "kept"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_settings_read_the_secrets_file_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOANS_GEN_SSN_KEY", raising=False)
    monkeypatch.delenv("LOANS_GEN_SSN_KEY_VERSION", raising=False)
    assert GeneratorSettings().ssn_key.get_secret_value() == ""
    secrets.ensure(SECRETS_FILE)
    secrets.rotate_ssn_key(SECRETS_FILE)
    settings = GeneratorSettings()
    assert settings.ssn_key.get_secret_value() == secrets.read(SECRETS_FILE)[secrets.KEY]
    assert settings.ssn_key_version == 2 and "**" in repr(settings.ssn_key)
    monkeypatch.setenv("LOANS_GEN_SSN_KEY", "from-the-environment")
    assert GeneratorSettings().ssn_key.get_secret_value() == "from-the-environment"


def test_a_write_that_fails_midway_keeps_every_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is written beside itself and renamed over: a crash (here: the disk full after the
    first line) leaves the old file whole, not truncated; and no temporary file is left behind."""
    path = tmp_path / "secrets.env"
    secrets.write(path, {"LOANS_KAFKA_PASSWORD_ADMIN": "old-admin", "LOANS_KAFKA_PASSWORD_SPARK": "old"})
    before = path.read_text()

    class Full:
        def __init__(self, out: Any) -> None:
            self.out = out

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.out.close()

        def write(self, text: str) -> int:
            return self.out.write(text)

        def writelines(self, lines: Any) -> None:
            raise OSError(28, "No space left on device")

    real = os.fdopen
    monkeypatch.setattr(secrets.os, "fdopen", lambda fd, mode: Full(real(fd, mode)))
    with pytest.raises(OSError, match="No space"):
        secrets.write(path, {"LOANS_KAFKA_PASSWORD_ADMIN": "new", "LOANS_KAFKA_PASSWORD_SPARK": "new"})
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.env"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_each_service_reads_only_its_own_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make up` keeps every password in secrets.env for itself (and docker compose), and gives each
    principal a file of its own: a process reads only the files of the principals it is. Here the
    whole file is gone, as on a host given only the dashboard's: the dashboard still connects, and the
    broker's admin password is in no file but the admin's."""
    from core.settings import KafkaSettings, MlflowSettings, load

    monkeypatch.chdir(tmp_path)
    master = Path(SECRETS_FILE)
    users = {secrets.KAFKA: ("admin", "producer", "dashboard", "spark"), secrets.MLFLOW: ("admin", "serving")}
    secrets.ensure(master, users, **{secrets.PROTOCOL: "SASL_PLAINTEXT"})
    stored = secrets.read(master)
    master.unlink()
    own = {f.name: secrets.read(f) for f in (master.parent / "secrets").iterdir()}
    assert {n for n, values in own.items() if any("PASSWORD" in k for k in values)} == {
        "kafka-admin.env", "kafka-producer.env", "kafka-dashboard.env", "kafka-spark.env",
        "mlflow-admin.env", "mlflow-serving.env",
    }  # fmt: skip
    for name, values in own.items():
        assert len([k for k in values if "PASSWORD" in k or k == secrets.KEY]) == 1, name
        assert stat.S_IMODE((master.parent / "secrets" / name).stat().st_mode) == 0o600
    admin = stored[secrets.password_key(secrets.KAFKA, "admin")]
    assert [n for n, values in own.items() if admin in values.values()] == ["kafka-admin.env"]
    assert secrets.read(master.parent / "client.env") == {secrets.PROTOCOL: "SASL_PLAINTEXT"}
    monkeypatch.delenv("LOANS_KAFKA_SECURITY_PROTOCOL")
    dashboard = load(KafkaSettings, service="dashboard")
    assert dashboard.security_protocol == "SASL_PLAINTEXT"
    assert dashboard.password.get_secret_value() == stored[secrets.password_key(secrets.KAFKA, "dashboard")]
    serving = load(MlflowSettings, service="serving")
    assert serving.password.get_secret_value() == stored[secrets.password_key(secrets.MLFLOW, "serving")]
