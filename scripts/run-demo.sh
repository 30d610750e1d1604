#!/usr/bin/env bash
# Set up and run the main job: a real campaign on the embedded defaults (SQLite,
# Prefect's ephemeral API, the simulated lab in-process).  Arguments go to `matloop demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/matloop demo "$@"
