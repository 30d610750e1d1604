#!/usr/bin/env bash
# Set everything up and run the tests: lint, then the whole suite (real PostgreSQL,
# real HTTP, real SLURM + GPAW, real Prefect).  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system --extras test,postgres,mlip,benchmarks,dask
if [ -x .ci/start_slurm.sh ] || [ -f .ci/start_slurm.sh ]; then
  bash .ci/start_slurm.sh
fi
echo "==> ruff check"
.venv/bin/ruff check .
echo "==> pytest"
.venv/bin/python -m pytest "$@"
