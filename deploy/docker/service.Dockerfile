# syntax=docker/dockerfile:1
# The recommendation service (`replayrec serve`), the serving install profile (SERVING_PACKAGES of
# replayrec.application._profile): core without extras, the baselines, LightGCN, DIN and RankNet plugins
# without their [train] extras, replayrec-serving; plus mlflow-skinny (the REST client that resolves
# `<plugin>@prod` aliases in an MLflow registry server). No torch, Lightning, Ray or full MLflow.
#
#   buildah bud --format docker -f deploy/docker/service.Dockerfile -t replayrec-service .   (or docker build)
#
# mlflow-skinny talks to a registry server only: give REPLAYREC_TRACKING_URI=http(s)://… (a sqlite or
# postgresql URI needs the full mlflow of the training image). The artifact directories the versions' tags
# name must be mounted at the same path (the state volume, shared with training).
# Runs as 10001:10001 on a read-only root file system: it writes only to the state directory
# (REPLAYREC_STATE_DIR: prepared datasets, serve/ with several workers) and /tmp, both volumes.
# BASE_IMAGE: the official image, pinned by tag and multi-architecture index digest; a local build on a
# machine without Docker Hub passes its own Debian 12 Python 3.11 image here (replayrec.infra._image_build).
ARG BASE_IMAGE=python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3

FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/lock.txt requirements/lock.txt
COPY core core
COPY plugins/baselines plugins/baselines
COPY plugins/recall_lightgcn plugins/recall_lightgcn
COPY plugins/rank_din plugins/rank_din
COPY plugins/rerank_ranknet plugins/rerank_ranknet
COPY serving serving
# non-editable installs, every version constrained by the lock file; bytecode compiled now (the root file
# system is read-only at run time)
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c requirements/lock.txt \
        ./core ./plugins/baselines ./plugins/recall_lightgcn ./plugins/rank_din ./plugins/rerank_ranknet \
        ./serving mlflow-skinny \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib

FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.0.0
ARG GIT_COMMIT=unknown
ARG SOURCE=https://github.com/replayrec/replayrec
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="replayrec-service" \
      org.opencontainers.image.description="replayrec recommendation service (serving profile)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
RUN groupadd --gid 10001 replayrec \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin replayrec \
    && install -d -o 10001 -g 10001 -m 0750 /state /data
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MLFLOW_DISABLE_TELEMETRY=true \
    REPLAYREC_HOST=0.0.0.0 \
    REPLAYREC_PORT=8000 \
    REPLAYREC_STATE_DIR=/state \
    REPLAYREC_DATA_DIR=/data \
    REPLAYREC_GIT_COMMIT=${GIT_COMMIT}
WORKDIR /state
VOLUME ["/state", "/data", "/tmp"]
USER 10001:10001
EXPOSE 8000
# liveness only (/healthz answers before any model is loaded); Kubernetes uses its own probes instead
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('REPLAYREC_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["replayrec", "serve"]
