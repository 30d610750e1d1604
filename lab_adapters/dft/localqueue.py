"""The embedded default scheduler: a bounded pool of local processes whose state lives on disk.

Nothing is held only in memory, so matloop may die and restart at any moment:
each task is a JSON file, each running job writes its pid (``local.pid``) and,
when it ends, its exit status (``local.exit``).  After a restart the queue
re-attaches to jobs whose process is still alive (pid and start time must both
match, so a recycled pid is not mistaken for ours) and reports LOST those that
died without an exit status.  A lock file serialises concurrent matloop processes.

Jobs run in their own session, so cancelling kills everything they started, and
outlive matloop on purpose (a restart must not kill a day-long calculation).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from lab_adapters.dft.scheduler import SchedJob, SchedState
from lab_adapters.dft.settings import Resources
from matloop.types import AdapterError

#: Children spawned by this process, kept so they are reaped (a zombie would look alive).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

LAUNCHER = """#!/bin/bash
# Written by matloop's local queue: runs job.sh with a walltime and records how it ended.
exec 9>local.lock
flock -n 9 || exit 0   # a second launch of the same job (after a crash) does nothing
echo $$ > local.pid
start=$(date +%s)
timeout --kill-after=10 {seconds} bash {script} > local.out 2>&1
rc=$?
echo "$rc $(( $(date +%s) - start ))" > local.exit.tmp && mv local.exit.tmp local.exit
"""


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, session id, start time in clock ticks) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[3]), int(fields[19])


def _alive(pid: int, start: int | None) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return start is None or stat[2] == start


def kill_session(sid: int, sig: int) -> None:
    """Signal every process of session ``sid`` (the job, ``timeout``, and what they started)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == sid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), sig)


class LocalQueueScheduler:
    """Runs at most ``max_workers`` jobs at once on this machine, first come first served."""

    kind = "local"

    def __init__(self, root: str | Path, max_workers: int = 1, *, pump_interval: float = 0.5) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.root = Path(root) / ".localqueue"
        self.tasks = self.root / "tasks"
        self.tasks.mkdir(parents=True, exist_ok=True)
        self.max_workers = max_workers
        self.pump_interval = pump_interval
        self._thread_lock = threading.Lock()
        self._pumper: threading.Thread | None = None

    # -- disk state --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, open(self.root / "lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def _path(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise AdapterError(f"invalid job name {name!r}")
        return self.tasks / f"{name}.json"

    def _load(self, name: str) -> dict | None:
        try:
            return json.loads(self._path(name).read_text())
        except FileNotFoundError:
            return None

    def _save(self, task: dict) -> None:
        path = self._path(task["name"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(task, indent=1))
        tmp.replace(path)

    def _all(self) -> list[dict]:
        return sorted((json.loads(p.read_text()) for p in self.tasks.glob("*.json")), key=lambda t: t["seq"])

    # -- state of one task -------------------------------------------------------------------
    @staticmethod
    def _pid_of(task: dict) -> tuple[int | None, int | None]:
        """The job's pid: from ``local.pid`` (written by the launcher that holds the lock) when present."""
        pid_file = Path(task["dir"]) / "local.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return task.get("pid"), task.get("pid_start")
        if pid == task.get("pid"):
            return pid, task.get("pid_start")
        stat = _proc_stat(pid)
        return pid, (stat[2] if stat else None)

    def _state(self, task: dict) -> SchedJob:
        directory = Path(task["dir"])

        def job(state: SchedState, reason: str = "") -> SchedJob:
            return SchedJob(id=task["name"], name=task["name"], state=state, reason=reason)

        if task["state"] == "cancelled" or (directory / "local.cancelled").exists():
            if task["state"] == "queued" or task["state"] == "cancelled":
                return job(SchedState.CANCELLED, "cancelled before it started")
            pid, start = self._pid_of(task)
            if pid is not None and _alive(pid, start):
                return job(SchedState.RUNNING, "cancelling")
            return job(SchedState.CANCELLED)
        if task["state"] == "queued":
            return job(SchedState.PENDING, "waiting for a free worker")
        pid, start = self._pid_of(task)
        if pid is not None and _alive(pid, start):  # check life before the exit file: no race with its writing
            return job(SchedState.RUNNING)
        exit_file = directory / "local.exit"
        if exit_file.exists():
            rc_text, _, elapsed = exit_file.read_text().strip().partition(" ")
            rc = int(rc_text)
            if rc == 0:
                return job(SchedState.COMPLETED)
            if rc in (124, 137) and float(elapsed or 0) >= task["timeout_s"]:
                return job(SchedState.TIMEOUT, f"walltime {task['timeout_s']:g} s reached")
            if rc == 137:
                return job(SchedState.OUT_OF_MEMORY, "killed by SIGKILL (out of memory?)")
            return job(SchedState.FAILED, f"exit status {rc}")
        return job(SchedState.LOST, f"process {pid} ended without an exit status (killed, or the machine restarted)")

    # -- the pool ----------------------------------------------------------------------------
    def _spawn(self, task: dict) -> None:
        directory = Path(task["dir"])
        (directory / "local_launch.sh").write_text(
            LAUNCHER.format(seconds=math.ceil(task["timeout_s"]), script=shlex.quote(task["script"]))
        )
        env = {**os.environ, "MATLOOP_CPUS": str(task.get("cpus", 1))}
        proc = subprocess.Popen(
            ["bash", "local_launch.sh"], cwd=directory, env=env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _CHILDREN[proc.pid] = proc
        stat = _proc_stat(proc.pid)
        task.update(state="started", pid=proc.pid, pid_start=stat[2] if stat else None, started_at=time.time())
        self._save(task)

    def pump(self) -> None:
        """Start queued jobs while workers are free (called on every submit and poll, and by a thread)."""
        with self._locked():
            tasks = self._all()
            busy = sum(1 for t in tasks if t["state"] == "started" and self._state(t).state is SchedState.RUNNING)
            for task in tasks:
                if task["state"] != "queued":
                    continue
                if (Path(task["dir"]) / "local.pid").exists():  # launched before a crash: adopt it
                    task["state"] = "started"
                    self._save(task)
                    continue
                if busy >= self.max_workers:
                    break
                self._spawn(task)
                busy += 1

    def _background_pump(self) -> None:
        while True:
            time.sleep(self.pump_interval)
            try:
                self.pump()
                if not any(t["state"] == "queued" for t in self._all()):
                    return
            except Exception:  # never let a background thread die noisily; the next poll pumps again
                return

    def _ensure_pumper(self) -> None:
        if self._pumper is None or not self._pumper.is_alive():
            self._pumper = threading.Thread(target=self._background_pump, name="matloop-localqueue", daemon=True)
            self._pumper.start()

    # -- Scheduler ---------------------------------------------------------------------------
    def find(self, name: str, directory: str) -> SchedJob | None:
        task = self._load(name)  # tasks live under this queue's own root: names cannot collide across roots
        return self._state(task) if task else None

    def submit(self, name: str, directory: str, script: str, resources: Resources) -> str:
        with self._locked():
            if self._load(name) is None:
                self._save({
                    "name": name, "dir": str(Path(directory).resolve()), "script": script, "state": "queued",
                    "timeout_s": resources.time, "cpus": resources.cpus_per_task, "seq": time.time_ns(),
                    "submitted_at": time.time(),
                })
        self.pump()
        self._ensure_pumper()
        return name

    def states(self, ids: Sequence[str]) -> dict[str, SchedJob]:
        self.pump()
        out = {}
        for name in ids:
            task = self._load(name)
            if task is not None:
                out[name] = self._state(task)
        return out

    def cancel(self, job_id: str) -> None:
        with self._locked():
            task = self._load(job_id)
            if task is None:
                return
            if task["state"] == "queued":
                task["state"] = "cancelled"
                self._save(task)
                return
            if task["state"] == "started":
                (Path(task["dir"]) / "local.cancelled").write_text(str(time.time()))
                pid, start = self._pid_of(task)
                if pid is not None and _alive(pid, start):
                    kill_session(pid, signal.SIGTERM)  # start_new_session: the session id is the launcher's pid
                    killer = threading.Timer(10.0, kill_session, (pid, signal.SIGKILL))
                    killer.daemon = True
                    killer.start()
