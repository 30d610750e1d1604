# One image for every matloop service in docker-compose.yml (worker, simulated lab, migrations).
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
RUN pip install --no-cache-dir -c requirements/constraints.txt ".[postgres]"
ENV MATLOOP_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["matloop"]
