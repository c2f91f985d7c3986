# syntax=docker/dockerfile:1
# The streaming job (`replayrec stream run`): Spark Structured Streaming (PySpark 4.3, local[2]) reading the
# events topic and keeping the online features in Redis; core with its [stream] extra (pyspark[sql],
# confluent-kafka) on Debian's OpenJDK 17 JRE.
#
#   buildah bud -f deploy/docker/stream.Dockerfile -t replayrec-stream .   (or docker build)
#
# Runs as 10001:10001 on a read-only root file system: the checkpoint, the job's files and Spark's scratch
# space live in the state directory (a volume); the JVM's and Python's temporary files in /tmp (a volume).
# Prometheus /metrics on 0.0.0.0:9466 (REPLAYREC_METRICS_HOST) for the pod's scraper.
ARG BASE_IMAGE=python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3

FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/lock.txt requirements/lock.txt
COPY core core
# pyspark is an sdist (≈ 450 MB, built here); every version constrained by the lock file
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c requirements/lock.txt "./core[stream]" \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib

FROM ${BASE_IMAGE} AS runtime
# Debian bookworm(-security)'s OpenJDK 17 JRE: bump with the security archive (an old version leaves it)
ARG JRE_VERSION=17.0.21.1+2-1~deb12u1
ARG VERSION=0.0.0
ARG GIT_COMMIT=unknown
ARG SOURCE=https://github.com/replayrec/replayrec
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="replayrec-stream" \
      org.opencontainers.image.description="replayrec streaming job (Spark Structured Streaming to Redis)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
RUN apt-get update \
    && apt-get install -y --no-install-recommends "openjdk-17-jre-headless=${JRE_VERSION}" \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 replayrec \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin replayrec \
    && install -d -o 10001 -g 10001 -m 0750 /state /data
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PYSPARK_PYTHON=/opt/venv/bin/python \
    SPARK_LOCAL_IP=127.0.0.1 \
    REPLAYREC_STATE_DIR=/state \
    REPLAYREC_DATA_DIR=/data \
    REPLAYREC_METRICS_HOST=0.0.0.0 \
    REPLAYREC_GIT_COMMIT=${GIT_COMMIT}
WORKDIR /state
VOLUME ["/state", "/data", "/tmp"]
USER 10001:10001
EXPOSE 9466
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9466/metrics', timeout=4)"]
ENTRYPOINT ["replayrec", "stream", "run"]
