# syntax=docker/dockerfile:1
# Training and the promotion pipeline (`replayrec train …`, `replayrec pipeline …`, the Argo steps): core with
# its [train,postgres,infra] extras (Lightning, full MLflow with PostgreSQL, Ray Train) and every model plugin
# with its [train] extra. TORCH_VARIANT picks the torch 2.13.0 build: cpu (default) or a CUDA one, e.g. cu128
# (its wheels bring the CUDA runtime; the node's driver comes in through the NVIDIA container toolkit).
#
#   buildah bud -f deploy/docker/training.Dockerfile --build-arg TORCH_VARIANT=cu128 -t replayrec-training:gpu .
#
# Runs as 10001:10001; writes to the state directory (artifacts, reports) and /tmp (Ray's session files,
# HOME: caches). The entry point is the CLI: the command comes from the job (e.g. `train lightgcn`).
ARG BASE_IMAGE=python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3

FROM ${BASE_IMAGE} AS builder
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/${TORCH_VARIANT}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/lock.txt requirements/lock.txt
COPY core core
COPY plugins plugins
# one pip command, so nothing else can pull another torch: torch==2.13.0 (the lock's) from the variant's
# index (its +cpu / +cuXYZ local version outranks PyPI's build); everything else constrained by the lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c requirements/lock.txt --extra-index-url "${TORCH_INDEX}" \
        "torch==2.13.0" "./core[train,postgres,infra]" "./plugins/baselines[train]" "./plugins/recall_ease[train]" \
        "./plugins/recall_lightgcn[train]" "./plugins/rank_din[train]" "./plugins/rerank_ranknet[train]" \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib

FROM ${BASE_IMAGE} AS runtime
ARG TORCH_VARIANT=cpu
ARG VERSION=0.0.0
ARG GIT_COMMIT=unknown
ARG SOURCE=https://github.com/replayrec/replayrec
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="replayrec-training" \
      org.opencontainers.image.description="replayrec training and promotion (torch ${TORCH_VARIANT})" \
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
    REPLAYREC_STATE_DIR=/state \
    REPLAYREC_DATA_DIR=/data \
    REPLAYREC_GIT_COMMIT=${GIT_COMMIT}
WORKDIR /state
VOLUME ["/state", "/data", "/tmp"]
USER 10001:10001
ENTRYPOINT ["replayrec"]
CMD ["--help"]
