# An example trainer that logs with tailboard: examples/train_container.py on the official PyTorch
# CUDA runtime image, writing /logs/<run>/rank<RANK>.jsonl as uid 10002, group 10000.
#   docker build -f docker/trainer.Dockerfile -t tailboard-trainer .
#   docker run --gpus all -v tailboard-logs:/logs tailboard-trainer
# On a base without torch (a plain Python image), say which torch to add:
#   --build-arg BASE=python:3.11-slim --build-arg TORCH=2.13.0+cpu [--build-arg WHEELS=/dir/of/wheels]
ARG BASE=pytorch/pytorch:2.8.0-cuda12.9-cudnn9-runtime

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY writer writer
COPY sidecar sidecar
COPY viewer viewer
RUN python3 -m pip wheel --no-cache-dir --no-deps --quiet --wheel-dir /dist .

FROM ${BASE}
ARG TORCH=""
ARG WHEELS=""
# The writer is standard library only: the wheel adds no dependency to the image. Its version is the
# source tree's (hence no pin). Debian's python refuses installs outside a venv (PEP 668); the flag
# is harmless where it is not needed.
COPY --from=build /dist /tmp/dist
# hadolint ignore=DL3013
RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --quiet /tmp/dist/*.whl \
 && if [ -n "$TORCH" ]; then \
      PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --quiet \
        ${WHEELS:+--find-links "$WHEELS"} "torch==$TORCH"; \
    fi \
 && rm -rf /tmp/dist
# Same ids as the sidecar image and the manifests: group 10000 owns /logs (setgid, so every folder
# the trainer makes stays in the group the sidecar reads with).
RUN groupadd --gid 10000 tailboard \
 && useradd --uid 10002 --gid 10000 --no-create-home --shell /usr/sbin/nologin trainer \
 && install -d -o root -g 10000 -m 2775 /logs
COPY examples/train_container.py /opt/tailboard/train_container.py
ENV PYTHONUNBUFFERED=1 \
    TAILBOARD_LOGDIR=/logs
USER 10002:10000
CMD ["python3", "/opt/tailboard/train_container.py"]
