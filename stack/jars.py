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

INFRA = Path(__file__).resolve().parents[1] / "infra"
MAVEN_SETTINGS = INFRA / "maven-settings.xml"
KAFKA_POM = INFRA / "kafka" / "pom.xml"
SPARK_POM = INFRA / "spark" / "pom.xml"
JUNIT_POM = INFRA / "junit" / "pom.xml"
# the job's own JVM code (sparky/jvm: the exactly-once writer, the model scorer, ...), compiled once
JVM_SOURCES = INFRA.parent / "sparky" / "jvm"
WRITER_PREFIX = "loanstream-"
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
    """Every jar the job's JVM needs beyond pyspark's: the Kafka connector's and ONNX Runtime's from
    `dest` (`ensure`d with SPARK_POM) and the job's own classes, compiled there once per version of
    their sources."""
    ensure_classes(cached(SPARK_POM, dest))
    return jar_list(dest)


def sources() -> list[Path]:
    """The job's Java sources (sparky/jvm/*.java; their tests are in sparky/jvm/test)."""
    return sorted(JVM_SOURCES.glob("*.java"))


def ensure_classes(dest: Path) -> Path | None:
    """Compile the job's Java sources against pyspark's and `dest`'s jars into
    `dest/loanstream-<digest>.jar` unless there (older versions removed). Code running from a wheel
    has no sources: the jar `make install` built is used as it is."""
    if not (files := sources()):
        return next(iter(sorted(dest.glob(f"{WRITER_PREFIX}*.jar"))), None)
    total = hashlib.sha256()
    for path in files:
        total.update(f"{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    jar = dest / f"{WRITER_PREFIX}{total.hexdigest()[:12]}.jar"
    if jar.exists():
        return jar
    log.info("compiling sparky/jvm (%d classes) into %s (once per version)", len(files), jar)
    for old in dest.glob(f"{WRITER_PREFIX}*.jar"):  # earlier versions: not on the classpath either
        old.unlink()
    classes = dest / ".classes"
    _javac(files, f"{spark_provided()}/*:{dest.resolve()}/*", classes)
    _run([_tool("jar"), "cf", str(jar), "-C", str(classes), "."], jar.name)
    shutil.rmtree(classes, ignore_errors=True)
    return jar


def test_jvm(spark_dir: Path, junit_dir: Path) -> int:
    """Compile sparky/jvm/test/*.java against the job's jar and run them with JUnit's console
    launcher (resolved once by Maven from JUNIT_POM); return its exit status."""
    ensure_classes(cached(SPARK_POM, spark_dir))
    console = next(iter(sorted(ensure(JUNIT_POM, junit_dir).glob("junit-platform-console-standalone*.jar"))))
    tests = sorted((JVM_SOURCES / "test").glob("*.java"))
    path = f"{spark_provided()}/*:{spark_dir.resolve()}/*"
    classes = junit_dir / ".test-classes"
    _javac(tests, f"{path}:{console}", classes)
    launcher = "org.junit.platform.console.ConsoleLauncher"  # java expands the classpath's wildcards
    cmd = [_tool("java"), "-cp", f"{classes}:{path}:{console}", launcher, "execute", "--disable-banner"]
    cmd += ["--disable-ansi-colors"]
    cmd += ["--details=tree", "--scan-class-path", str(classes)]
    return subprocess.run(cmd, check=False).returncode  # noqa: S603


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServiceError(
            f"a JDK ({name}) is needed once to build the job's JVM classes (sparky/jvm): install one "
            "(apt-get install openjdk-17-jdk-headless)"
        )
    return found


def _javac(files: list[Path], classpath: str, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [_tool("javac"), "-nowarn", "--release", "17", "-cp", classpath, "-d", str(out)]
    _run([*cmd, *map(str, files)], ", ".join(f.name for f in files))


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise ServiceError(f"building {what} failed: {(result.stdout + result.stderr).strip()[-800:]}")


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
