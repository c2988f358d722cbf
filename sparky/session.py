"""The Spark session of the job: master, Kafka connector jars (resolved once), UTC, quiet logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from core.settings import PathSettings, SparkJobSettings
from core.stack import jars

log = logging.getLogger(__name__)

SPARK_POM = jars.INFRA / "spark" / "pom.xml"
POOLS = jars.INFRA / "spark" / "fairscheduler.xml"  # one pool per query, `events` first


def connector_jars(paths: PathSettings) -> list[Path]:
    """spark-sql-kafka (pyspark's version) and what pyspark does not ship, from .loans/jars/spark."""
    provided = Path(pyspark.__file__).parent / "jars"
    return jars.jar_list(jars.ensure(SPARK_POM, paths.jars / "spark", provided=provided))


def build_session(
    job: SparkJobSettings, paths: PathSettings, app_name: str = "loan-stream", ui: bool = True
) -> SparkSession:
    """A SparkSession for `job.master` with the Kafka connector on its classpath."""
    session = (
        SparkSession.builder.master(job.master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(j) for j in connector_jars(paths)))
        .config("spark.sql.shuffle.partitions", str(job.shuffle_partitions))
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.scheduler.allocation.file", str(POOLS))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", str(ui).lower())
        .config(
            "spark.sql.streaming.stateStore.providerClass",
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        )
        # a commit writes the batch's changes, not a copy of the store
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # the lake rewrites only a batch's own files; pyspark's workers print pandas FutureWarnings
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.executorEnv.PYTHONWARNINGS", "ignore::FutureWarning")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel(job.log_level)
    log.info(
        "spark %s session on %s, %d shuffle partitions", session.version, job.master, job.shuffle_partitions
    )
    return session
