#!/usr/bin/env bash
# Set up matloop on a fresh machine: a virtual environment in .venv with torch
# (the local CPU build), matloop and its extras.  Idempotent: a second run only
# checks.  Usage: bash scripts/setup.sh [--system] [--extras test,postgres,mlip,benchmarks]
#   --system   also install the Debian packages the full test-suite uses
#              (PostgreSQL, SLURM + munge, GPAW); needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="postgres"
system=0
while [ $# -gt 0 ]; do
  case "$1" in
    --system) system=1 ;;
    --extras) extras="$2"; shift ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$system" = 1 ]; then
  bash scripts/install-system-packages.sh
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

stamp=.venv/.matloop-installed
want="$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16) $extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "==> .venv is up to date"
  exit 0
fi

# torch first: ==2.13.0 takes the local CPU build; any other spec pulls GBs of CUDA packages.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "==> installing torch 2.13.0 (CPU)"
  "${pip[@]}" install torch==2.13.0
fi
echo "==> installing matloop[$extras]"
"${pip[@]}" install -c requirements/constraints.txt -e ".[$extras]"
echo "$want" > "$stamp"
echo "==> ready: .venv/bin/matloop"
