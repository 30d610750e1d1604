#!/usr/bin/env bash
# Start a single-node SLURM (munge + slurmctld + slurmd) on localhost for tests and CI.
#
# Idempotent: when the controller answers and the node is usable it does nothing;
# otherwise it starts whatever is missing. Needs root (or sudo) because slurmd
# launches jobs and munged/slurmctld write under /etc, /run and /var.
# Settings: .ci/slurm/slurm.conf.in (why linuxproc/task-none: see that file).
#   MATLOOP_SLURM_STATE  where state, spool and logs go (default /var/lib/matloop-slurm)
#   MATLOOP_SLURM_CPUS   CPUs the node offers (default: nproc)
# Exit status: 0 when SLURM is up, 3 when slurm-wlm/munge are not installed, 1 otherwise.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${MATLOOP_SLURM_STATE:-/var/lib/matloop-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="rendered by .ci/start_slurm.sh"
HOST="$(hostname -s)"

log() { echo "==> slurm: $*"; }

node_ready() {
  scontrol ping 2>/dev/null | grep -q "is UP" || return 1
  sinfo -h -n "$HOST" -o "%T" 2>/dev/null | grep -qE "^(idle|mixed|allocated|completing)" || return 1
}

for cmd in slurmctld slurmd sbatch squeue scontrol munged munge; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "slurm: '$cmd' is not installed (Debian packages: slurm-wlm munge)" >&2
    exit 3
  fi
done

if [ -f "$CONF" ] && node_ready; then
  log "already running"
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi

# munge: the authentication daemon every SLURM message is signed with.
if ! munge -n </dev/null >/dev/null 2>&1; then
  log "starting munged"
  $sudo mkdir -p /run/munge /var/log/munge /var/lib/munge
  $sudo chown munge:munge /run/munge /var/log/munge /var/lib/munge
  $sudo chmod 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    $sudo mungekey --create --force
    $sudo chown munge:munge /etc/munge/munge.key
    $sudo chmod 0400 /etc/munge/munge.key
  fi
  $sudo runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n </dev/null >/dev/null || { echo "slurm: munged did not start" >&2; exit 1; }
fi

# slurm.conf: rendered from the template unless someone else's config is in place.
if [ -f "$CONF" ] && ! grep -q "$MARK" "$CONF"; then
  log "keeping the existing $CONF (not written by this script)"
else
  cpus="${MATLOOP_SLURM_CPUS:-$(nproc)}"
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  tmp="$(mktemp)"
  {
    echo "# $MARK from .ci/slurm/slurm.conf.in; edits are overwritten."
    sed -e "s|@HOST@|$HOST|g" -e "s|@STATE@|$STATE|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem_mb|g" \
      "$HERE/slurm/slurm.conf.in"
  } >"$tmp"
  $sudo mkdir -p /etc/slurm
  if ! cmp -s "$tmp" "$CONF" 2>/dev/null; then
    log "writing $CONF"
    $sudo install -m 0644 "$tmp" "$CONF"
  fi
  rm -f "$tmp"
fi
$sudo mkdir -p "$STATE/ctld" "$STATE/d"

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
  if pid_alive "$STATE/slurmctld.pid"; then
    log "slurmctld is running but not answering yet"
  else
    log "starting slurmctld"
    $sudo slurmctld
  fi
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q "is UP" && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q "is UP" || { echo "slurm: slurmctld did not come up; see $STATE/slurmctld.log" >&2; exit 1; }

if ! pid_alive "$STATE/slurmd.pid"; then
  log "starting slurmd"
  $sudo slurmd
fi

for i in $(seq 150); do
  if node_ready; then log "up (node $HOST)"; exit 0; fi
  # A node that was down (e.g. after an unclean stop) is put back into service.
  if [ $((i % 10)) = 0 ] && sinfo -h -n "$HOST" -o "%T" 2>/dev/null | grep -qE "down|drain"; then
    $sudo scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  fi
  sleep 0.2
done
echo "slurm: node $HOST did not become ready; see $STATE/slurmd.log and $STATE/slurmctld.log" >&2
sinfo -N -l >&2 || true
exit 1
