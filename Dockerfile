# hashmatch service image.
#
#   docker build -t hashmatch .
#   docker run --rm -p 50051:50051 -v hashmatch-data:/data hashmatch
#
# builder: build hashmatch and every dependency of its [server] extra into wheels (pdqhash is
#          sdist-only, so this stage has a C++ compiler).
# runtime: install those wheels only; no compiler, no pip cache, non-root user 10001.
#
# Needs BuildKit (the default builder since Docker 23) for RUN --mount. The base image can be
# swapped with --build-arg PYTHON_IMAGE=... (it must provide python3.11, pip and Python's headers).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel '.[server]' --wheel-dir /wheels

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HASHMATCH_HEALTH_ADDR=127.0.0.1:50051
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'hashmatch[server]' \
 && groupadd --gid 10001 hashmatch \
 && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin hashmatch \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0700 /data
USER 10001:10001
WORKDIR /data
VOLUME /data
# gRPC, and Prometheus /metrics
EXPOSE 50051 9464
# grpc.health.v1.Health/Check on the overall service (""): healthy only when SERVING.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel(os.environ.get('HASHMATCH_HEALTH_ADDR', '127.0.0.1:50051'))).Check(h.HealthCheckRequest(service=''), timeout=3); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["hashmatch", "serve"]
CMD ["--listen", "0.0.0.0:50051", "--data-dir", "/data", "--metrics", "0.0.0.0:9464"]
