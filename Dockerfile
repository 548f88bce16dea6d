# syntax=docker/dockerfile:1
# Two images from one file; tests/unit/image/test_dockerfile.py checks what they must agree on with the chart and
# the operator (entrypoints, user, Ray version, what each installs).
#
#   docker build --target operator -t vlmtune-operator:0.1.0 .     # kopf + kubernetes only: no torch, no Ray
#   docker build --target train -t vlmtune:0.1.0 .                 # Ray pods, CPU torch (CI, CPU node pools)
#   docker build --target train -t vlmtune:0.1.0-cuda \
#       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#       --build-arg TORCH_CONSTRAINTS=constraints/gpu.txt .        # Ray pods on GPU node pools (CUDA torch)
#
# Pin PYTHON_IMAGE by digest (python:3.11-slim@sha256:...) in release builds.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# One unprivileged user for both images: its uid/gid are the chart's operator.runAsUser/runAsGroup, so a
# volume or file owned by the image user is also the pod's.
ARG APP_UID=65532
RUN groupadd --system --gid "${APP_UID}" vlmtune \
 && useradd --system --uid "${APP_UID}" --gid "${APP_UID}" --create-home --home-dir /home/vlmtune \
      --shell /bin/bash vlmtune

# The sources pip builds the vlmtune wheel from (.dockerignore keeps everything else out of the context).
FROM base AS source
WORKDIR /src
COPY pyproject.toml README.md ./
COPY constraints/ constraints/
COPY platform/ platform/
COPY model/ model/
COPY operators/ operators/

# Everything is installed under one prefix and copied into /usr/local of the final image, not into a venv:
# KubeRay starts Ray through `bash -lc`, and a login shell resets PATH to the system default, which has
# /usr/local/bin but not a venv's bin.
FROM source AS operator-build
RUN pip install --prefix=/install ".[operator]"

FROM source AS train-build
# Must equal RuntimeConfig.rayVersion (chart value runtime.rayVersion): KubeRay picks commands by it and the
# head's Ray must match the submitter's.
ARG RAY_VERSION=2.60.0
# The torch build comes from the index: CPU by default; a CUDA index (cu128, ...) for GPU images, with
# constraints/gpu.txt. The CPU constraints are refused with any other index (and the other way round).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_CONSTRAINTS=constraints/cpu.txt
RUN case "${TORCH_INDEX_URL%/}" in \
      */cpu) test "${TORCH_CONSTRAINTS}" = constraints/cpu.txt \
               || { echo "TORCH_CONSTRAINTS=${TORCH_CONSTRAINTS}: the CPU torch index takes constraints/cpu.txt" >&2; exit 1; } ;; \
      *)     test "${TORCH_CONSTRAINTS}" != constraints/cpu.txt \
               || { echo "TORCH_CONSTRAINTS=constraints/cpu.txt is for the CPU torch index; with ${TORCH_INDEX_URL} pass --build-arg TORCH_CONSTRAINTS=constraints/gpu.txt" >&2; exit 1; } ;; \
    esac
RUN pip install --prefix=/install --extra-index-url "${TORCH_INDEX_URL}" -c "${TORCH_CONSTRAINTS}" \
      ".[train]" "ray[default,data,train]==${RAY_VERSION}"

# The operator: the chart runs `vlmtune-operator --runtime=... --liveness=...` with a read-only root filesystem.
FROM base AS operator
COPY --from=operator-build /install /usr/local
USER 65532:65532
WORKDIR /home/vlmtune
ENTRYPOINT ["vlmtune-operator"]

# Every Ray pod of a RayJob: KubeRay overrides the command with `ray start`, and the submitter runs the RayJob's
# entrypoint `vlmtune run --spec-json ...`; `docker run IMAGE run jobs/smoke.yaml` runs a job locally.
FROM base AS train
# KubeRay's exec probes (older Ray, or when HTTP probes do not apply) call wget. On CPU nodes DeepSpeed
# JIT-compiles its shared-memory collective op (deepspeed_shm_comm) on first use, which needs g++.
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget g++ \
 && rm -rf /var/lib/apt/lists/*
COPY --from=train-build /install /usr/local
USER 65532:65532
WORKDIR /home/vlmtune
ENV HOME=/home/vlmtune
ENTRYPOINT ["vlmtune"]
