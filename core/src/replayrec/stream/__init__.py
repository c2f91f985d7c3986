"""The streaming job: Spark Structured Streaming reads the events topic (a Python Data Source) and keeps the
online feature store in Redis, exactly once. PySpark is imported only when the job runs.
"""

from replayrec.stream._job import JobOptions, run_job
from replayrec.stream._metrics import StreamMetrics
from replayrec.stream._sink import BatchReport, FeatureSink, StoreLostError

__all__ = ["BatchReport", "FeatureSink", "JobOptions", "StoreLostError", "StreamMetrics", "run_job"]
