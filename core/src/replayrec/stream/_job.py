"""The streaming job: Spark Structured Streaming from the events topic into the online feature store.

``local[2]``, no UI, two shuffle partitions, a 1 GiB driver, Spark's own logging at ERROR. The checkpoint
(Spark's offset and commit logs) lives under the state directory; each micro-batch goes to the sink through
``foreachBatch`` as an Arrow table.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from replayrec.bus import BusConfig, high_watermarks, make_reader
from replayrec.features import OnlineFeatures
from replayrec.runtime import write_json_atomic
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
    metrics = StreamMetrics()
    server = _metrics_server(metrics, opts.metrics_port)
    store = OnlineFeatures.connect(opts.redis_url, opts.bus.namespace, opts.groups)
    sink = FeatureSink(store, opts.bus, opts.item_index, opts.catalog, metrics=metrics)
    lag_reader = make_reader(opts.bus, client_id="replayrec-stream-lag")
    reports_path = opts.folder / "batches.jsonl"
    status: dict[str, Any] = {
        "pid": os.getpid(),
        "started": time.time(),
        "batches": 0,
        "namespace": opts.bus.namespace,
    }
    write_json_atomic(opts.folder / "job.json", {**status, "state": "starting"})
    spark = _session(opts.folder)
    spark.dataSource.register(BusSource)

    running: dict[str, Any] = {}  # the query, once started (its progress reports the previous batch)

    def each_batch(df: Any, batch_id: int) -> None:
        rep = sink.process(int(batch_id), df.toArrow())
        meta = store.meta()
        lag = None
        if meta is not None:
            ends = high_watermarks(lag_reader, opts.bus.events_topic)
            lag = sum(max(e - meta.offsets.get(p, 0), 0) for p, e in ends.items())
            metrics.lag.set(lag)
        prog = running["query"].lastProgress if "query" in running else None
        row = {
            **rep.as_dict(),
            "lag": lag,
            "at": time.time(),
            "spark_prev_ms": (prog or {}).get("durationMs"),
        }
        if rep.outcome != "empty":
            _rotate(reports_path)
            with reports_path.open("a") as out:
                out.write(json.dumps(row) + "\n")
        status["batches"] = int(status["batches"]) + 1
        write_json_atomic(opts.folder / "job.json", {**status, "state": "running", "last": row})

    stream = (
        spark.readStream.format("replayrec_bus")
        .option("bootstrap", opts.bus.bootstrap_servers)
        .option("namespace", opts.bus.namespace)
        .option("partitions", str(opts.bus.event_partitions))
        .option("maxRecordsPerTrigger", str(opts.max_records))
        .option("tasks", str(opts.tasks))
        .load()
    )
    query = (
        stream.writeStream.foreachBatch(each_batch)
        .option("checkpointLocation", str(opts.checkpoint))
        .trigger(processingTime=f"{opts.trigger_ms} milliseconds")
        .start()
    )
    running["query"] = query
    log.info("stream job running (checkpoint %s)", opts.checkpoint)
    write_json_atomic(opts.folder / "job.json", {**status, "state": "running"})
    rc = 0
    try:
        while not stop.is_set():
            if query.awaitTermination(1.0):
                break
            sink.watch()
        if query.exception() is not None:
            log.error("the streaming query failed: %s", query.exception())
            rc = 1
    finally:
        for step in (query.stop, spark.stop):
            try:
                step()
            except Exception as exc:  # the JVM may already be gone (a signal to the whole group)
                log.warning("stopping Spark: %s", exc)
        sink.close()
        lag_reader.close()
        write_json_atomic(opts.folder / "job.json", {**status, "state": "stopped" if rc == 0 else "failed"})
        if server is not None:
            server.shutdown()
            server.server_close()
    return rc


def _rotate(path: Path, limit: int = 64 * 2**20) -> None:
    """Keep the batch log bounded: past ``limit`` bytes it becomes ``<name>.1`` (replacing the older one)."""
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def _metrics_server(metrics: StreamMetrics, port: int | None) -> Any:
    if port is None:
        return None
    try:
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    except OSError as exc:
        log.warning("stream metrics not served: 127.0.0.1:%d (%s)", port, exc.strerror)
        return None
    log.info("stream metrics on http://127.0.0.1:%d/metrics", port)
    return server
