"""JVM jars resolved once from Maven Central into a local folder, so later runs work offline."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import shutil
import subprocess
from pathlib import Path

from core.errors import ServiceError

log = logging.getLogger(__name__)

INFRA = Path(__file__).resolve().parents[2] / "infra"
MAVEN_SETTINGS = INFRA / "maven-settings.xml"
KAFKA_POM = INFRA / "kafka" / "pom.xml"
SPARK_POM = INFRA / "spark" / "pom.xml"
# the job's own JVM code: real-time risk's exactly-once writer (sparky/transactional.py builds it)
WRITER_SOURCE = INFRA.parent / "sparky" / "jvm" / "TransactionalRows.java"
WRITER_PREFIX = "loanstream-writer-"
_STAMP = ".pom.sha256"


def ensure(pom: Path, dest: Path, provided: Path | None = None) -> Path:
    """Copy `pom`'s runtime dependencies into `dest` unless already there for this exact pom;
    jars whose artifact `provided` already holds (e.g. pyspark's own jars) are left out."""
    if _current(pom, dest):
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
    if provided is not None:
        have = {_artifact(jar.name) for jar in provided.glob("*.jar")}
        for jar in dest.glob("*.jar"):
            if _artifact(jar.name) in have:
                jar.unlink()
    (dest / _STAMP).write_text(_digest(pom))
    return dest


def cached(pom: Path, dest: Path) -> Path:
    """`dest` where `ensure` filled it; never asks Maven (a job start must not). The pom is compared
    where it can be read: code running from a wheel has no infra/ folder, and `make install` (before
    every make target that starts a job) already resolved the jars for the current pom."""
    filled = (dest / _STAMP).exists() and any(dest.glob("*.jar"))
    if not (_current(pom, dest) if pom.is_file() else filled):
        raise ServiceError(
            f"the {pom.parent.name} jars are not in {dest} yet: run `make install` once "
            "(it resolves them from Maven Central)"
        )
    return dest


def spark_jars(dest: Path) -> list[Path]:
    """Every jar the job's JVM needs beyond pyspark's: the Kafka connector's from `dest` (`ensure`d
    with SPARK_POM) and the job's own writer, compiled there once per version of its source."""
    ensure_writer(cached(SPARK_POM, dest))
    return jar_list(dest)


def ensure_writer(dest: Path) -> Path | None:
    """Compile WRITER_SOURCE against pyspark's and the connector's jars into
    `dest/loanstream-writer-<digest>.jar` unless there (older versions removed). Code running from a
    wheel has no source: the jar `make install` built is used as it is."""
    if not WRITER_SOURCE.is_file():
        return next(iter(sorted(dest.glob(f"{WRITER_PREFIX}*.jar"))), None)
    source = WRITER_SOURCE.read_bytes()
    jar = dest / f"{WRITER_PREFIX}{hashlib.sha256(source).hexdigest()[:12]}.jar"
    if jar.exists():
        return jar
    javac, tool = shutil.which("javac"), shutil.which("jar")
    if javac is None or tool is None:
        raise ServiceError(
            "a JDK (javac, jar) is needed once to build the job's Kafka writer (sparky/jvm): install one "
            "(apt-get install openjdk-17-jdk-headless), or run with LOANS_SPARK_EXACTLY_ONCE=false"
        )
    log.info("compiling %s into %s (once per version)", WRITER_SOURCE.name, jar)
    for old in dest.glob(f"{WRITER_PREFIX}*.jar"):  # earlier versions: not on the classpath either
        old.unlink()
    classes = dest / ".writer-classes"
    shutil.rmtree(classes, ignore_errors=True)
    path = f"{spark_provided()}/*:{dest.resolve()}/*"
    for cmd in (
        [javac, "-nowarn", "--release", "17", "-cp", path, "-d", str(classes), str(WRITER_SOURCE)],
        [tool, "cf", str(jar), "-C", str(classes), "."],
    ):
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise ServiceError(
                f"building {jar.name} failed: {(result.stdout + result.stderr).strip()[-500:]}"
            )
    shutil.rmtree(classes, ignore_errors=True)
    return jar


def spark_provided() -> Path:
    """The jars pyspark ships (the connector's dependencies already there are left out)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ServiceError("pyspark is not installed: run `make install`")
    return Path(spec.origin).parent / "jars"


def _digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _current(pom: Path, dest: Path) -> bool:
    stamp = dest / _STAMP
    return stamp.exists() and stamp.read_text() == _digest(pom) and any(dest.glob("*.jar"))


def _artifact(file_name: str) -> str:
    """`kafka-clients-3.9.2.jar` -> `kafka-clients`."""
    return re.sub(r"-\d[^-]*(-[A-Za-z0-9]+)?\.jar$", "", file_name)


def classpath(dest: Path) -> str:
    """A Java classpath of every jar in `dest`."""
    return f"{dest.resolve()}/*"


def jar_list(dest: Path) -> list[Path]:
    return sorted(p.resolve() for p in dest.glob("*.jar"))
