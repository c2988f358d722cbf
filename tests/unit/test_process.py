"""Pid-file and port handling of the local stack (no services needed)."""

from __future__ import annotations

import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from unittest.mock import patch

import pytest

from core.errors import PortInUseError
from core.ports import free_port, port_free, require_free
from stack.process import ManagedProcess, wait_until


def test_stale_pid_file_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("999999")  # no such process
    proc = ManagedProcess("x", pid_file, tmp_path / "x.log", marker="never-there")
    assert proc.pid() is None
    assert not pid_file.exists()


def test_pid_of_unrelated_live_process_is_not_ours(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # an exec'ing process shows an empty cmdline for an instant (which pid() treats as ours)
        wait_until(lambda: bool(Path(f"/proc/{other.pid}/cmdline").read_bytes()), 5, "child exec")
        pid_file = tmp_path / "x.pid"
        pid_file.write_text(str(other.pid))
        assert ManagedProcess("x", pid_file, tmp_path / "x.log", marker="server.properties").pid() is None
        assert other.poll() is None  # and we did not touch it
    finally:
        other.kill()
        other.wait()


def test_start_and_stop_own_process(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker-arg")
    proc = ManagedProcess("sleeper", tmp_path / "s.pid", tmp_path / "s.log", marker=marker)
    pid = proc.start([sys.executable, "-c", "import time, sys; time.sleep(60)", marker])
    assert proc.pid() == pid
    assert proc.stop(timeout_s=5) is True
    assert proc.pid() is None
    assert proc.stop() is False


def test_port_in_use_names_port_and_setting() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert not port_free("127.0.0.1", port)
        with pytest.raises(PortInUseError, match=f"port {port} .* set LOANS_STACK_KAFKA_PORT"):
            require_free("127.0.0.1", port, "LOANS_STACK_KAFKA_PORT")


def test_a_cluster_of_three_takes_port_pairs_and_one_static_quorum(tmp_path: Path) -> None:
    from stack.kafka import KafkaCluster, min_insync

    cluster = KafkaCluster.local(tmp_path, tmp_path, "127.0.0.1", 9092, 9093, "512m", "", size=3)
    assert cluster.bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert [n.home.name for n in cluster.nodes] == ["kafka", "kafka-2", "kafka-3"]
    assert {n.voters for n in cluster.nodes} == {"1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"}
    single = KafkaCluster.local(tmp_path, tmp_path, "127.0.0.1", 9092, 9093, "512m", "")
    assert single.nodes[0].voters == "" and single.nodes[0].process.name == "kafka broker"
    assert [min_insync(r) for r in (1, 2, 3, 5)] == [1, 1, 2, 2]


def test_a_job_start_never_resolves_jars(tmp_path: Path) -> None:
    """Jars come from `make install`; without them a session start says so instead of calling Maven."""
    from core.errors import ServiceError
    from stack import jars

    with pytest.raises(ServiceError, match="run `make install` once"):
        jars.cached(jars.SPARK_POM, tmp_path / "spark")


def test_the_writer_jar_is_built_once_per_source_version(tmp_path: Path) -> None:
    """sparky/jvm compiled against the connector's jars (from `make install`), named by its source's
    digest: built once, older versions removed, and no JDK is a one-line error saying what to do."""
    from core.errors import ServiceError
    from core.settings import PathSettings
    from stack import jars

    cache = jars.cached(jars.SPARK_POM, PathSettings().jars / "spark")
    dest = tmp_path / "spark"
    dest.mkdir()
    for jar in cache.glob("*.jar"):
        if not jar.name.startswith(jars.WRITER_PREFIX):
            (dest / jar.name).symlink_to(jar.resolve())
    (dest / f"{jars.WRITER_PREFIX}0ld.jar").write_bytes(b"")
    with patch("shutil.which", return_value=None), pytest.raises(ServiceError, match="install one"):
        jars.ensure_classes(dest)
    built = jars.ensure_classes(dest)
    assert built is not None and built.name.startswith(jars.WRITER_PREFIX) and built.stat().st_size > 1000
    with zipfile.ZipFile(built) as archive:
        assert "loanstream/TransactionalRows.class" in archive.namelist()
    assert [p.name for p in dest.glob(f"{jars.WRITER_PREFIX}*.jar")] == [built.name]
    mtime = built.stat().st_mtime_ns
    assert jars.ensure_classes(dest) == built and built.stat().st_mtime_ns == mtime  # not rebuilt
