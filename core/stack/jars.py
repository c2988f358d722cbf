"""JVM jars resolved once from Maven Central into a local folder, so later runs work offline."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

from core.errors import ServiceError

log = logging.getLogger(__name__)

INFRA = Path(__file__).resolve().parents[2] / "infra"
KAFKA_POM = INFRA / "kafka" / "pom.xml"
SPARK_POM = INFRA / "spark" / "pom.xml"
_STAMP = ".pom.sha256"


def ensure(pom: Path, dest: Path) -> Path:
    """Copy `pom`'s runtime dependencies into `dest` unless already there for this exact pom."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    stamp = dest / _STAMP
    if stamp.exists() and stamp.read_text() == digest and any(dest.glob("*.jar")):
        return dest
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(
            "Maven ('mvn') is needed once to fetch JVM jars; install it (apt-get install maven)"
        )
    log.info("resolving jars of %s from Maven Central into %s (once)", pom.parent.name, dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={dest.resolve()}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise ServiceError(f"mvn could not resolve {pom}: {' | '.join(tail)}")
    stamp.write_text(digest)
    return dest


def classpath(dest: Path) -> str:
    """A Java classpath of every jar in `dest`."""
    return f"{dest.resolve()}/*"


def jar_list(dest: Path) -> list[Path]:
    return sorted(p.resolve() for p in dest.glob("*.jar"))
