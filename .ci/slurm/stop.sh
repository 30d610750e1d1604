#!/usr/bin/env bash
# Stop what .ci/start_slurm.sh started (slurmd, slurmctld, munged), by their pid files.
set -uo pipefail
STATE="${MATLOOP_SLURM_STATE:-/var/lib/matloop-slurm}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
  if [ -f "$pidfile" ] && pid="$(cat "$pidfile")" && kill -0 "$pid" 2>/dev/null; then
    $sudo kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
done
echo "==> slurm: stopped"
