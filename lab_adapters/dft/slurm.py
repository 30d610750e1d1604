"""SLURM as a :class:`Scheduler`: ``sbatch --parsable``, ``squeue``/``sacct``, ``scancel``, through a command runner.

Jobs are named by the idempotency key, so ``find`` can answer "was this already
submitted?" from SLURM itself after a crash between ``sbatch`` and recording its
id.  ``squeue -t all`` still lists finished jobs for ``MinJobAge`` seconds;
``sacct`` (when the cluster has accounting) remembers them for longer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lab_adapters.dft.runner import CommandResult, CommandRunner
from lab_adapters.dft.scheduler import SchedJob, map_slurm_state
from lab_adapters.dft.settings import Resources, slurm_time
from matloop.types import AdapterError

_SQUEUE_FORMAT = "%i|%j|%T|%r|%Z"
_TRANSIENT = re.compile(r"timed out|unable to contact|temporarily|try again|connection|resource temporarily", re.I)
_SACCT_OFF = re.compile(r"accounting storage is disabled|slurmdbd|not running a supported accounting", re.I)


def _fail(action: str, result: CommandResult) -> AdapterError:
    text = result.stderr + result.stdout
    return AdapterError(f"{action} failed: {result.describe()}", transient=bool(_TRANSIENT.search(text)))


class SlurmScheduler:
    """Submits and follows batch jobs; commands run through ``runner`` (here, or on a login node by SSH)."""

    kind = "slurm"

    def __init__(self, runner: CommandRunner, *, use_sacct: bool = True, timeout: float = 60.0) -> None:
        self.runner = runner
        self.use_sacct = use_sacct
        self.timeout = timeout

    # -- commands ---------------------------------------------------------------------------
    def sbatch_argv(self, name: str, directory: str, script: str, resources: Resources) -> list[str]:
        """The ``sbatch`` command line for one job (public so it can be checked without a cluster)."""
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            f"--chdir={directory}",
            f"--output={directory}/slurm-%j.out",
            f"--time={slurm_time(resources.time)}",
            f"--nodes={resources.nodes}",
            f"--ntasks={resources.ntasks}",
            f"--cpus-per-task={resources.cpus_per_task}",
        ]
        for flag, value in (("partition", resources.partition), ("account", resources.account),
                            ("qos", resources.qos), ("mem", resources.mem)):
            if value:
                argv.append(f"--{flag}={value}")
        argv += resources.extra_sbatch
        argv.append(script)
        return argv

    def _squeue(self, *selector: str) -> list[SchedJob]:
        result = self.runner.run(["squeue", "-h", "-t", "all", *selector, "-o", _SQUEUE_FORMAT], timeout=self.timeout)
        if not result.ok:
            if "Invalid job id" in result.stderr:
                return []
            raise _fail("squeue", result)
        return [self._row(line) for line in result.stdout.splitlines() if line.strip()]

    @staticmethod
    def _row(line: str) -> SchedJob:
        parts = line.strip().split("|")
        if len(parts) < 3:
            raise AdapterError(f"cannot read squeue/sacct line {line!r}")
        return SchedJob(id=parts[0], name=parts[1], state=map_slurm_state(parts[2]),
                        reason=parts[3] if len(parts) > 3 else "", directory=parts[4] if len(parts) > 4 else "")

    def _sacct(self, *selector: str) -> list[SchedJob]:
        if not self.use_sacct:
            return []
        argv = ["sacct", "-n", "-X", "-P", "-S", "2000-01-01", *selector, "-o", "JobID,JobName,State,ExitCode,WorkDir"]
        result = self.runner.run(argv, timeout=self.timeout)
        if not result.ok or _SACCT_OFF.search(result.stdout + result.stderr):
            if _SACCT_OFF.search(result.stdout + result.stderr):
                self.use_sacct = False  # no accounting on this cluster: squeue and the job files must do
                return []
            raise _fail("sacct", result)
        return [self._row(line) for line in result.stdout.splitlines() if line.strip()]

    # -- Scheduler ----------------------------------------------------------------------------
    def find(self, name: str, directory: str) -> SchedJob | None:
        def ours(jobs: list[SchedJob]) -> list[SchedJob]:
            # the same key from another work dir (a deleted campaign run again) is not this job
            return [j for j in jobs if j.name == name and j.directory.rstrip("/") == directory.rstrip("/")]

        jobs = ours(self._squeue(f"--name={name}")) or ours(self._sacct(f"--name={name}"))
        return max(jobs, key=lambda j: int(re.sub(r"\D.*", "", j.id) or 0)) if jobs else None

    def submit(self, name: str, directory: str, script: str, resources: Resources) -> str:
        result = self.runner.run(self.sbatch_argv(name, directory, script, resources), timeout=self.timeout)
        if not result.ok:
            raise _fail("sbatch", result)
        job_id = result.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise AdapterError(f"sbatch printed {result.stdout.strip()!r}, not a job id")
        return job_id

    def states(self, ids: Sequence[str]) -> dict[str, SchedJob]:
        if not ids:
            return {}
        found = {j.id: j for j in self._squeue("-j", ",".join(ids))}
        if len(found) < len(set(ids)) and len(ids) > 1:
            # squeue refuses the whole list when one id is unknown: ask one by one
            for job_id in ids:
                if job_id not in found:
                    found.update({j.id: j for j in self._squeue("-j", job_id)})
        missing = [i for i in ids if i not in found]
        if missing:
            found.update({j.id: j for j in self._sacct("-j", ",".join(missing)) if j.id in missing})
        return found

    def cancel(self, job_id: str) -> None:
        result = self.runner.run(["scancel", job_id], timeout=self.timeout)
        if not result.ok and not re.search(r"already completing or completed|Invalid job id", result.stderr):
            raise _fail("scancel", result)


