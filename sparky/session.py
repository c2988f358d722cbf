"""The Spark session of the job: master, Kafka connector jars (resolved once), UTC, quiet logs.

The JVM is started in a process session of its own, so a Ctrl-C in the terminal reaches only the
Python driver, which stops the queries cleanly (`core.cli.stop_requested`), and not the JVM or the
Python workers it starts (they would die mid-task and log it).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from pyspark import SparkConf, SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import SparkSession

from core.errors import ConfigError
from core.settings import PathSettings, SparkJobSettings
from stack import jars

log = logging.getLogger(__name__)

POOLS = "fairscheduler.xml"  # package data of sparky: one pool per query, `realtime` first
LOGS = "log4j2.properties"  # package data of sparky: Spark's own log, errors only
ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"


def connector_jars(paths: PathSettings) -> list[Path]:
    """spark-sql-kafka (pyspark's version) and what pyspark does not ship, from .loans/jars/spark, as
    `make install` resolved them (a job start never calls Maven), and the job's own writer."""
    return jars.spark_jars(paths.jars / "spark")


# the Kafka options carry the SASL password (kafka.sasl.jaas.config): never in plans or the UI
REDACTION = ("spark.sql.redaction.options.regex", "(?i)url|jaas|password|secret|token")


def _package_file(paths: PathSettings, name: str) -> Path:
    """Package data of sparky as a file the JVM can read (the code may run from a wheel or zip)."""
    path = paths.home.resolve() / "run" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(resources.files("sparky").joinpath(name).read_text())
    return path


def spark_conf(job: SparkJobSettings, paths: PathSettings, app_name: str, ui: bool) -> SparkConf:
    """Everything the job's session is configured with."""
    logs = f"-Dlog4j2.configurationFile=file:{_package_file(paths, LOGS)}"
    return SparkConf().setAll(
        [
            ("spark.master", job.master),
            ("spark.app.name", app_name),
            ("spark.jars", ",".join(str(j) for j in connector_jars(paths))),
            ("spark.sql.shuffle.partitions", str(job.shuffle_partitions)),
            ("spark.scheduler.mode", "FAIR"),
            ("spark.scheduler.allocation.file", str(_package_file(paths, POOLS))),
            ("spark.sql.session.timeZone", "UTC"),
            ("spark.ui.enabled", str(ui).lower()),
            ("spark.driver.bindAddress", job.bind_address),  # driver RPC, block manager
            ("spark.driver.host", job.bind_address),
            REDACTION,
            ("spark.ui.showConsoleProgress", "false"),  # progress bars garble the log
            ("spark.sql.streaming.stateStore.providerClass", ROCKSDB),
            # a commit writes the batch's changes, not a copy of the store
            ("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true"),
            ("spark.sql.execution.arrow.pyspark.enabled", "true"),
            # the lake rewrites only a batch's own files; pyspark's workers print pandas FutureWarnings
            ("spark.sql.sources.partitionOverwriteMode", "dynamic"),
            ("spark.executorEnv.PYTHONWARNINGS", "ignore::FutureWarning"),
            # stopping a query mid-batch matches a regex against an error message that holds the
            # whole plan; on the default thread stack that overflowed (StackOverflowError on Ctrl-C)
            ("spark.driver.extraJavaOptions", f"-Xss16m {logs}"),
            ("spark.executor.extraJavaOptions", logs),
        ]
    )


def build_session(
    job: SparkJobSettings, paths: PathSettings, app_name: str = "loan-stream", ui: bool = True
) -> SparkSession:
    """A SparkSession for `job.master` with the Kafka connector on its classpath."""
    conf = spark_conf(job, paths, app_name, ui)
    os.environ["SPARK_LOCAL_IP"] = job.bind_address  # the UI binds here (Spark reads no setting for it)
    if SparkContext._gateway is None:  # noqa: SLF001 (the one way to start the JVM on our terms)
        gateway = launch_gateway(conf, popen_kwargs={"start_new_session": True})
        SparkContext._ensure_initialized(gateway=gateway, conf=conf)  # noqa: SLF001
    session = SparkSession.builder.config(conf=conf).getOrCreate()
    session.sparkContext.setLogLevel(job.log_level)
    log.info(
        "spark %s session on %s, %d shuffle partitions", session.version, job.master, job.shuffle_partitions
    )
    return session


def stop_session(spark: SparkSession) -> None:
    """Stop the session for good, quietly: Spark's state-store maintenance thread can still wake
    once after the session is gone, and tasks interrupted by a stop can still finish, each logging
    a stack trace that says nothing about the job."""
    spark.sparkContext.setLogLevel("OFF")
    spark.stop()


def exists(spark: SparkSession, location: str) -> bool:
    """Whether `location` (a path or URI) exists, asked of Hadoop's file system for its scheme."""
    fs, path = _fs(spark, location)
    return bool(fs.exists(path))


def _fs(spark: SparkSession, location: str) -> tuple[Any, Any]:
    """(Hadoop file system, Path) of `location` (a path or URI)."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    path = jvm.org.apache.hadoop.fs.Path(location)  # type: ignore[union-attr]
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path  # noqa: SLF001


def stable_id(spark: SparkSession, folder: str) -> str:
    """The id kept in `folder/writer-id` (a query's checkpoint folder), made on first use: it names
    the query's Kafka transactions and offsets for as long as its checkpoint lives, and a new (or
    reset) checkpoint gets a new one."""
    fs, path = _fs(spark, f"{folder.rstrip('/')}/writer-id")
    if fs.exists(path):
        jvm: Any = spark.sparkContext._jvm  # noqa: SLF001
        stream = fs.open(path)
        try:
            return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")).strip()
        finally:
            stream.close()
    made = uuid.uuid4().hex[:8]
    stream = fs.create(path, False)
    try:
        stream.write(made.encode())
    finally:
        stream.close()
    return made


def remove(spark: SparkSession, location: str) -> None:
    """Delete `location` (a folder, recursively) if it exists."""
    fs, path = _fs(spark, location)
    if fs.exists(path):
        fs.delete(path, True)


LOCAL = re.compile(r"^local\[(\d+|\*)(,\d+)?\]$")


def resolve_master(settings: SparkJobSettings, partitions: int) -> SparkJobSettings:
    """`settings` with a master that has a task slot for every partition the real-time query holds
    and some for the other queries: `local[*]` becomes cores + partitions; a smaller `local[N]` is a
    ConfigError saying what to set."""
    match = LOCAL.match(settings.master)
    if match is None or "realtime" not in settings.queries.split(","):
        return settings
    cores = os.cpu_count() or 2
    needed = partitions + 2
    if match.group(1) == "*":
        master = f"local[{max(cores + partitions, needed)}{match.group(2) or ''}]"
        log.info("master %s: %d cores + %d real-time slots -> %s", settings.master, cores, partitions, master)
        return settings.model_copy(update={"master": master})
    if int(match.group(1)) < needed:
        raise ConfigError(
            f"LOANS_SPARK_MASTER={settings.master} has {match.group(1)} task slots, but the real-time query "
            f"holds one per partition of the input topic ({partitions}) and the other queries need 2 more: "
            f"use local[{needed}] or more (threads, not cores)"
        )
    return settings
