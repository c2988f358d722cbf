"""What keeps the job's queries running: start them, restart a failed one, follow the registry, stop.

    supervisor = Supervisor(Context(spark, kafka, topics, settings, mlflow))
    supervisor.start()          # every query LOANS_SPARK_QUERIES names; if one fails to start, none run
    supervisor.run(stop=event)  # until stopped: restarts, model moves, progress lines

Each query is checkpointed under LOANS_SPARK_CHECKPOINT_DIR/<query>. A failed query is restarted
from its checkpoint after a backoff (LOANS_SPARK_RESTART_BACKOFF_S, doubling up to
LOANS_SPARK_RESTART_BACKOFF_MAX_S) for as long as it fails, one log line each time; the others run
on meanwhile, and the metrics (`loans_job_query_restarting`) and `make status` show it restarting:
an operator, not the job, decides to give up. Only offsets lost to retention or to deleted topics
stop the job, with what to do.

Models: the supervisor asks the registry for the `champion` and `challenger` aliases (at most every
LOANS_SPARK_CHAMPION_POLL_S, on the driver, never inside a batch). A version is loaded and checked
(`sparky.watcher`: a version the loader refuses never scores), its ONNX file shipped to the
executors, and the real-time query restarted with it: from the offsets its writer committed, so
every application is scored exactly once, by the version its record names. With no champion the
real-time query writes risk alone; when one appears, scores start where the job did.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql.streaming import StreamingQuery

from core.errors import ConfigError, DataError
from core.settings import CHALLENGER
from models.registry.versions import ModelRef, load_scorer
from sparky.analyses.scores import Model
from sparky.context import Context, Models
from sparky.metrics import late_rows, read_offsets
from sparky.queries import BY_QUERY, QUERIES, Query
from sparky.session import exists
from sparky.watcher import AliasWatcher

log = logging.getLogger(__name__)
SCORING = "realtime"  # the query that runs the models
QUIET_S = 600.0  # a query that ran this long since its last failure counts its failures afresh


class Supervisor:
    def __init__(self, ctx: Context) -> None:
        wanted = ctx.settings.queries.split(",")
        if unknown := sorted(set(wanted) - set(BY_QUERY)):
            raise ConfigError(
                f"invalid setting LOANS_SPARK_QUERIES={ctx.settings.queries!r}: no query "
                f"{', '.join(unknown)}; choose from {', '.join(BY_QUERY)}"
            )
        self.ctx = ctx
        self.wanted: list[Query] = [q for q in QUERIES if q.name in wanted]
        self.queries: dict[str, StreamingQuery] = {}
        self.failures: dict[str, tuple[int, float]] = {}  # name -> (failures in a row, when the last)
        self.due: dict[str, float] = {}  # a failed query -> when it restarts (time.monotonic)
        mlflow, poll = ctx.mlflow, ctx.settings.champion_poll_s
        self.champion = AliasWatcher(mlflow, poll) if mlflow else None
        self.challenger = AliasWatcher(mlflow, poll, CHALLENGER) if mlflow else None
        self.files = Path(tempfile.mkdtemp(prefix="loan-stream-models-"))  # ONNX files shipped to executors

    def start(self) -> list[StreamingQuery]:
        """Start every query (those that need a model once a champion exists); if one fails to
        start, stop those already running and raise."""
        settings = self.ctx.settings
        fresh = not any(exists(self.ctx.spark, settings.location(q.name)) for q in self.wanted)
        where = f"the {settings.starting_offsets} offsets (LOANS_SPARK_STARTING_OFFSETS)"
        log.info(
            "checkpoints %s: %s", settings.checkpoint_dir,
            f"new, every query starts at {where}" if fresh else "found, every query resumes from them",
        )  # fmt: skip
        self.ctx = replace(self.ctx, models=self.models())
        try:
            for query in self.wanted:
                self.queries[query.name] = query.start(self.ctx)
        except Exception:
            self.stop()
            raise
        log.info(
            "started %d queries: %s; scoring: %s",
            len(self.queries), ", ".join(self.queries),
            self.ctx.models.describe() if self.ctx.mlflow else "off (no MLflow settings)",
        )  # fmt: skip
        return list(self.queries.values())

    def models(self) -> Models:
        """The versions the aliases name now, loaded, checked and shipped to the executors."""
        champion = self.champion.current() if self.champion else None
        if champion is None:
            return Models()
        rival = self.challenger.current() if self.challenger else None
        shadow = rival if rival is not None and rival.version != champion.version else None
        return Models(self._model(champion), self._model(shadow, shadow=True) if shadow else None)

    def _model(self, ref: ModelRef, shadow: bool = False) -> Model:
        assert self.ctx.mlflow is not None  # noqa: S101 (only with a registry)
        scorer = load_scorer(self.ctx.mlflow, ref)  # checked by AliasWatcher already: cached
        file = self.files / f"{ref.name}-v{ref.version}-{scorer.network.sha256[:12]}.onnx"
        if not file.exists():
            file.write_bytes(scorer.network.model)
            self.ctx.spark.sparkContext.addFile(str(file))
        return Model(ref, scorer, file, shadow)

    def follow_models(self) -> None:
        """When the aliases name other versions, restart the scoring query with them."""
        if self.champion is None:
            return
        now = self.models()
        before = self.ctx.models
        if _versions(now) != _versions(before):
            log.info("models: %s (was %s)", now.describe(), before.describe())
            self.ctx = replace(self.ctx, models=now)
            if SCORING in self.queries and SCORING not in self.due:
                self._stop_one(SCORING)
                self._start(SCORING, time.monotonic())

    def failed(self) -> StreamingQuery | None:
        return next((q for q in self.queries.values() if not q.isActive), None)

    def run(
        self,
        progress_every_s: float = 30.0,
        duration_s: float | None = None,
        stop: threading.Event | None = None,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Watch the queries until `duration_s` passes, `stop` is set or `until()` holds: restart
        failed queries (`watch`), follow the registry, log progress."""
        started = logged = time.monotonic()
        while duration_s is None or time.monotonic() - started < duration_s:
            if (stop is not None and stop.is_set()) or (until is not None and until()):
                return
            try:
                self.ctx.spark.streams.awaitAnyTermination(1)
            except StreamingQueryException:  # a query failed: restarted below
                self.ctx.spark.streams.resetTerminated()
            self.watch(time.monotonic())
            self.follow_models()
            if time.monotonic() - logged >= progress_every_s:
                self.log_progress()
                logged = time.monotonic()

    def behind(self, topic: str, target: dict[int, int]) -> list[str]:
        """The queries that read `topic` and have not yet read it up to `target` (partition -> end
        offset), as their last progress reports (a query that has reported none yet counts)."""
        late = []
        for name, q in self.queries.items():
            progress: dict[str, Any] = q.lastProgress or {}
            if progress and not any(topic in str(s.get("description")) for s in progress.get("sources", [])):
                continue  # it does not read `topic` (outcomes reads loan.truth)
            done = read_offsets(progress, topic)
            if any(done.get(p, 0) < end for p, end in target.items() if end > 0):
                late.append(name)
        return late

    def watch(self, now: float) -> None:
        """Plan the restart of each query that failed since, after its backoff; restart those due
        (`now`: time.monotonic). Nothing here waits."""
        for name, query in list(self.queries.items()):
            if name not in self.due and not query.isActive:
                self._failed(name, str(query.exception() or "stopped"), now)
        for name, at in list(self.due.items()):
            if now >= at:
                del self.due[name]
                self._start(name, now)

    def _start(self, name: str, now: float) -> None:
        """(Re)start query `name`; if that raises, plan another try (`_failed`)."""
        try:
            self.queries[name] = BY_QUERY[name].start(self.ctx)
        except Exception as exc:  # noqa: BLE001 (any cause: tried again, said in the log)
            self._failed(name, str(exc), now, restarting=True)

    def restarting(self) -> dict[str, int]:
        """The failed queries waiting to restart -> their failures in a row."""
        return {name: self.failures[name][0] for name in self.due}

    def _failed(self, name: str, error: str, now: float, restarting: bool = False) -> None:
        """Note a failure of query `name` and plan its restart; lost offsets raise instead."""
        settings = self.ctx.settings
        reason = error.strip().splitlines()[0][:300] if error.strip() else "stopped"
        if "failOnDataLoss" in error or "data may have been lost" in error.lower():
            raise DataError(
                f"query {name}: offsets its checkpoint needs are gone from Kafka (retention, or topics "
                f"deleted and made again): {reason}. If the topics were made again, the checkpoints "
                f"belong to the old ones: remove them (`rm -r {settings.checkpoint_dir}`; "
                "`make kafka-recreate` does it with the topics) and start again; to skip what retention "
                "removed, run with "
                "LOANS_SPARK_FAIL_ON_DATA_LOSS=false"
            )
        count, last = self.failures.get(name, (0, now))
        count = 1 if now - last > QUIET_S else count + 1
        self.failures[name] = (count, now)
        wait = min(settings.restart_backoff_s * 2 ** min(count - 1, 30), settings.restart_backoff_max_s)
        self.due[name] = now + wait
        if restarting:
            log.warning(
                "could not restart query %s (%s); trying again in %.0f s (failure %d)",
                name, reason, wait, count,
            )  # fmt: skip
        else:
            log.warning(
                "query %s failed (%s); restarting it from its checkpoint in %.0f s (failure %d)",
                name, reason, wait, count,
            )  # fmt: skip

    def log_progress(self) -> None:
        for name, q in self.queries.items():
            p: dict[str, Any] = q.lastProgress or {}
            log.info(
                "%-8s in %7.0f/s  done %7.0f/s  late dropped %d",
                name,
                p.get("inputRowsPerSecond", 0.0) or 0.0,
                p.get("processedRowsPerSecond", 0.0) or 0.0,
                late_rows(p),
            )

    def _stop_one(self, name: str) -> None:
        """Stop one query, quietly: a stop interrupts its running tasks, which Spark logs as errors."""
        context = self.ctx.spark.sparkContext
        context.setLogLevel("OFF")
        try:
            self.queries.pop(name).stop()
        finally:
            context.setLogLevel(self.ctx.settings.log_level)

    def stop(self, restore_logs: bool = True) -> None:
        """Stop every query, the latency-critical ones last. A requested stop interrupts the tasks
        running (a real-time query always has some), which Spark logs as task errors with stack
        traces; they say nothing here, so Spark's own log is silenced while the queries stop (and
        stays so unless `restore_logs`: interrupted tasks can still report as the session ends)."""
        context, py4j = (
            self.ctx.spark.sparkContext,
            logging.getLogger("py4j"),
        )  # py4j: interrupted foreachBatch
        context.setLogLevel("OFF")
        py4j_level, py4j.level = py4j.level, logging.CRITICAL
        try:
            for name in reversed(list(self.queries)):
                self.queries[name].stop()
            deadline = time.monotonic() + 10  # the interrupted tasks end (and log) after stop() returns
            while context.statusTracker().getActiveStageIds() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            if restore_logs:
                context.setLogLevel(self.ctx.settings.log_level)
                py4j.setLevel(py4j_level)
        log.info("stopped %d queries", len(self.queries))


def _versions(models: Models) -> tuple[str | None, str | None]:
    return tuple(m.ref.version if m else None for m in (models.champion, models.challenger))  # type: ignore[return-value]
