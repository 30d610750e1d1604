"""Run by the tests as a separate process: submit one job and die by SIGKILL right after the scheduler accepted it.

That is the worst moment for a controller to crash: ``sbatch`` (or the local queue)
has the job, the adapter has not yet recorded its id.  Usage:
``python tests/dft/crash_submit.py <local|slurm> <settings.json> <job.json>``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lab_adapters.dft import make_dft_adapter  # noqa: E402
from matloop.types import JobRequest  # noqa: E402


def main() -> None:
    kind, settings_path, job_path = sys.argv[1:4]
    adapter = make_dft_adapter("dft", kind, json.loads(Path(settings_path).read_text()))
    real_submit = adapter.scheduler.submit

    def submit_then_die(*args, **kwargs):  # type: ignore[no-untyped-def]
        job_id = real_submit(*args, **kwargs)
        print(f"submitted {job_id}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        return job_id

    adapter.scheduler.submit = submit_then_die  # type: ignore[method-assign]
    adapter.submit(JobRequest.model_validate_json(Path(job_path).read_text()))
    print("not killed", flush=True)


if __name__ == "__main__":
    main()
