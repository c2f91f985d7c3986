"""The streaming job: Spark Structured Streaming from the events topic into the online feature store.

``local[2]``, no UI, two shuffle partitions, a 1 GiB driver, Spark's own logging at ERROR. The checkpoint
(Spark's offset and commit logs) lives under the state directory; each micro-batch goes to the sink through
``foreachBatch`` as an Arrow table.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from replayrec.bus import BusConfig, BusUnavailableError, high_watermarks, make_reader
from replayrec.errors import ReplayrecError
from replayrec.features import OnlineFeatures
from replayrec.runtime import serve_metrics, write_json_atomic
from replayrec.stream._metrics import StreamMetrics
from replayrec.stream._sink import FeatureSink

__all__ = ["JobOptions", "run_job"]

log = logging.getLogger("replayrec.stream")

_LOG4J = """status = error
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


@dataclass(frozen=True)
class JobOptions:
    bus: BusConfig
    redis_url: str
    folder: Path  # the job's state: checkpoint/, batches.jsonl, job.json, spark-tmp/
    item_index: dict[str, int]
    groups: Any
    catalog: str
    trigger_ms: int = 500
    max_records: int = 20_000
    tasks: int = 2
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint"


def _session(folder: Path) -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log4j = folder / "log4j2.properties"
    log4j.write_text(_LOG4J)
    tmp = folder / "spark-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    java = f"-Dlog4j2.configurationFile=file:{log4j} -Djava.io.tmpdir={tmp}"
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("replayrec-stream")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "1g")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.local.dir", str(tmp))
        .config("spark.driver.extraJavaOptions", java)
        .config("spark.sql.streaming.stopTimeout", "10s")
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run_job(opts: JobOptions, stop: threading.Event | None = None) -> int:
    """Run until ``stop`` is set (or SIGTERM / SIGINT); 0 on a clean stop."""
    from replayrec.stream._source import BusSource

    stop = stop or threading.Event()
    opts.folder.mkdir(parents=True, exist_ok=True)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    status: dict[str, Any] = {"pid": os.getpid(), "started": time.time(), "batches": 0}
    status["namespace"] = opts.bus.namespace
    write_json_atomic(opts.folder / "job.json", {**status, "state": "starting"})
    metrics = StreamMetrics()
    store = OnlineFeatures.connect(opts.redis_url, opts.bus.namespace, opts.groups)
    sink = FeatureSink(store, opts.bus, opts.item_index, opts.catalog, metrics=metrics)
    lag_reader = make_reader(opts.bus, client_id="replayrec-stream-lag")
    server = serve_metrics(metrics.registry, opts.metrics_port, "stream", opts.metrics_host)
    running: dict[str, Any] = {}  # the query, once started (its progress reports the previous batch)
    rc, error = 0, None
    try:
        spark = running["spark"] = _session(opts.folder)
        spark.dataSource.register(BusSource)
        each_batch = _batch_function(opts, sink, store, lag_reader, metrics, status, running)
        running["query"] = _start_query(spark, opts, each_batch)
        log.info("stream job running (checkpoint %s)", opts.checkpoint)
        write_json_atomic(opts.folder / "job.json", {**status, "state": "running"})
        query = running["query"]
        while not stop.is_set() and not query.awaitTermination(1.0):
            _watch(sink, query)
    except Exception as exc:  # the query failed (awaitTermination raises its error) or Spark did not start
        rc, error = 1, _root_cause(exc)
        log.error("the stream job failed: %s", error)
    finally:
        for name in ("query", "spark"):
            if name in running:
                try:
                    running[name].stop()
                except Exception as exc:  # the JVM may already be gone (a signal to the whole group)
                    log.warning("stopping Spark: %s", exc)
        sink.close()
        lag_reader.close()
        store.r.close()
        final = {**status, "state": "stopped" if rc == 0 else "failed"}
        write_json_atomic(opts.folder / "job.json", {**final, "error": error} if error else final)
        if server is not None:
            server.shutdown()
            server.server_close()
    if error is not None:
        raise ReplayrecError(f"the stream job failed: {error}")
    return rc


_ERROR_LINE = re.compile(r"^replayrec\.[\w.]*?(\w+Error): (.+)$")


def _root_cause(exc: BaseException) -> str:
    """What went wrong, in one line: the replayrec error raised in the batch function or the source (Spark
    wraps it, Python traceback and all, in a StreamingQueryException), else the exception's first line."""
    text = str(exc).strip()
    for line in reversed(text.splitlines()):
        m = _ERROR_LINE.match(line.strip())
        if m:
            return f"{m.group(1)}: {m.group(2)}"
    return text.splitlines()[0] if text else type(exc).__name__


def _committed(query: Any) -> dict[int, int] | None:
    """The log position Spark last committed (its progress report), if it reported one."""
    try:
        sources = (query.lastProgress or {}).get("sources") or []
        end = sources[0].get("endOffset") if sources else None
        offsets = json.loads(end) if isinstance(end, str) else end
        return {int(p): int(o) for p, o in (offsets or {}).items()}
    except (ValueError, TypeError, AttributeError):
        return None


def _watch(sink: FeatureSink, query: Any) -> None:
    """The idle-time check for a lost or half-rebuilt store; a Redis or broker outage is retried at the
    next tick."""
    try:
        sink.watch(_committed(query))
    except (redis.RedisError, BusUnavailableError, OSError) as exc:
        log.warning("store watch: %s (retrying)", exc)


def _batch_function(
    opts: JobOptions,
    sink: FeatureSink,
    store: OnlineFeatures,
    lag_reader: Any,
    metrics: StreamMetrics,
    status: dict[str, Any],
    running: dict[str, Any],
) -> Any:
    reports_path = opts.folder / "batches.jsonl"

    def each_batch(df: Any, batch_id: int) -> None:
        rep = sink.process(int(batch_id), df.toArrow())
        lag = None
        try:  # a metric: never fail the batch for it
            meta = store.meta()
            if meta is not None:
                ends = high_watermarks(lag_reader, opts.bus.events_topic)
                lag = sum(max(e - meta.offsets.get(p, 0), 0) for p, e in ends.items())
                metrics.lag.set(lag)
        except (redis.RedisError, BusUnavailableError) as exc:
            log.warning("consumer lag not measured: %s", exc)
        prog = running["query"].lastProgress if "query" in running else None
        row = {**rep.as_dict(), "lag": lag, "at": time.time()}
        row["spark_prev_ms"] = (prog or {}).get("durationMs")  # Spark's phases of the previous batch
        if rep.outcome != "empty":
            _rotate(reports_path)
            with reports_path.open("a") as out:
                out.write(json.dumps(row) + "\n")
        status["batches"] = int(status["batches"]) + 1
        write_json_atomic(opts.folder / "job.json", {**status, "state": "running", "last": row})

    return each_batch


def _start_query(spark: Any, opts: JobOptions, each_batch: Any) -> Any:
    stream = (
        spark.readStream.format("replayrec_bus")
        .option("bootstrap", opts.bus.bootstrap_servers)
        .option("namespace", opts.bus.namespace)
        .option("partitions", str(opts.bus.event_partitions))
        .option("maxRecordsPerTrigger", str(opts.max_records))
        .option("tasks", str(opts.tasks))
        .load()
    )
    return (
        stream.writeStream.foreachBatch(each_batch)
        .option("checkpointLocation", str(opts.checkpoint))
        .trigger(processingTime=f"{opts.trigger_ms} milliseconds")
        .start()
    )


def _rotate(path: Path, limit: int = 64 * 2**20) -> None:
    """Keep the batch log bounded: past ``limit`` bytes it becomes ``<name>.1`` (replacing the older one)."""
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
