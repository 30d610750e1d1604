#!/usr/bin/env bash
# Debian packages used by the full test-suite: PostgreSQL (store tests), SLURM + munge
# (the DFT queue), GPAW (real DFT), Chromium (the browser test of the Prefect UI, driven by Playwright).
# Installs only what is missing.
set -euo pipefail
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
/usr/bin/python3 -c "import gpaw" 2>/dev/null || need+=(gpaw gpaw-data)
[ -d /usr/share/gpaw-setups ] || [ -d /usr/share/gpaw-data ] || need+=(gpaw-data)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  echo "==> Debian packages present"
  exit 0
fi
echo "==> installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
