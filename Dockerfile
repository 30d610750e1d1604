# One image for every matloop service in docker-compose.yml: the Prefect server, the worker, the simulated lab,
# the migrations. Build: `docker compose build` (or `docker build -t matloop:latest .`).
FROM python:3.11-slim
WORKDIR /app
# torch first and CPU-only: pass PyTorch's CPU wheel index as TORCH_INDEX_ARGS="--index-url <url>"
# at build time, or the default index installs the (much larger) CUDA build.
ARG TORCH_INDEX_ARGS=""
RUN pip install --no-cache-dir torch==2.13.0 ${TORCH_INDEX_ARGS}
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY matloop ./matloop
COPY agent ./agent
COPY generators ./generators
COPY surrogates ./surrogates
COPY lab_adapters ./lab_adapters
COPY flows ./flows
COPY migrations ./migrations
# postgres: psycopg for matloop's store; mlip: CHGNet and MACE for crystal campaigns. Prefect's server on
# PostgreSQL needs asyncpg, which Prefect itself depends on; the import below fails the build if it is missing.
ARG MATLOOP_EXTRAS="postgres,mlip"
RUN pip install --no-cache-dir -c requirements/constraints.txt ".[${MATLOOP_EXTRAS}]" \
    && python -c "import asyncpg, psycopg, prefect.server.api.server"
# Not root: the services only write to /data (named volumes take this ownership when first created).
RUN useradd --create-home --uid 10001 matloop && mkdir -p /data/simlab && chown -R matloop:matloop /data
USER matloop
ENV MATLOOP_DATA_DIR=/data \
    PREFECT_HOME=/data/prefect
VOLUME /data
ENTRYPOINT ["matloop"]
