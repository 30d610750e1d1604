"""The DFT adapters against real queues running real GPAW: the local process pool and single-node SLURM.

Every test runs on both adapters (``adapter_kind``), with the same job directories
and the same expectations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab_adapters.dft.localqueue import kill_session
from matloop.types import JobStatus

from .dft_helpers import REPO, AdapterFactory, job_for, nacl, silicon, wait_terminal

pytestmark = [pytest.mark.slurm, pytest.mark.gpaw, pytest.mark.slow]


def test_batch_of_two_structures_runs_and_is_parsed(make_adapter: AdapterFactory, tmp_path: Path) -> None:
    adapter = make_adapter()
    salt = job_for(nacl(), ["formation_energy", "band_gap", "total_energy"])
    si = job_for(silicon(), ["band_gap", "energy_per_atom", "formation_energy"])
    ids = [adapter.submit(salt), adapter.submit(si)]
    assert ids == [salt.idempotency_key, si.idempotency_key]
    assert adapter.submit(salt) == ids[0]  # a repeated submit is the same job

    states = wait_terminal(adapter, ids)
    assert states == {ids[0]: JobStatus.SUCCEEDED, ids[1]: JobStatus.SUCCEEDED}
    salt_result, si_result = adapter.fetch(ids[0]), adapter.fetch(ids[1])

    # PBE puts NaCl near -1.9 eV/atom (experiment -2.12) with a gap of ~5 eV; Si's PBE gap is ~0.6 eV.
    assert -2.6 < salt_result.properties["formation_energy"].value < -1.4
    assert salt_result.properties["formation_energy"].units == "eV/atom"
    assert 3.5 < salt_result.properties["band_gap"].value < 7.0
    assert salt_result.properties["total_energy"].value < 0
    assert 0.2 < si_result.properties["band_gap"].value < 1.5
    assert abs(si_result.properties["formation_energy"].value) < 0.05  # an element against itself
    assert set(si_result.properties) == {"band_gap", "energy_per_atom", "formation_energy"}

    # the exact settings travel with every result, and both share the reference cache of that hash
    for result in (salt_result, si_result):
        assert result.raw["settings"]["ecut"] == 200 and result.raw["settings"]["code"] == "gpaw"
        assert result.raw["settings_hash"] == salt_result.raw["settings_hash"]
        assert len(result.raw["attempts"]) == 1
    cache = Path(adapter.work_dir) / "references" / f"gpaw-{salt_result.raw['settings_hash']}"
    assert sorted(p.name for p in cache.glob("*.json")) == ["Cl.json", "Na.json", "Si.json"]
    assert json.loads((cache / "Cl.json").read_text())["molecule"] is True

    # the job directory is self-contained
    attempt = Path(salt_result.raw["attempts"][0]["dir"])
    for name in ("structure.json", "structure.cif", "job.sh", "job_input.json", "run_gpaw.py", "result.json",
                 "settings.json", "started", "exit_code"):
        assert (attempt / name).is_file(), name
    assert json.loads((attempt / "result.json").read_text())["status"] == "ok"
    assert adapter.fetch(ids[0]) == salt_result  # fetch is repeatable


def test_scf_failure_is_retried_with_looser_mixing_then_failed(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter()
    job = job_for(silicon(), ["band_gap"], options={"recipe": {"max_scf_iterations": 2}})
    key = adapter.submit(job)
    assert wait_terminal(adapter, [key])[key] is JobStatus.FAILED
    result = adapter.fetch(key)
    assert result.status is JobStatus.FAILED
    assert result.error is not None and result.error.startswith("scf_not_converged")
    assert "after 1 retry" in result.error
    first, second = result.raw["attempts"]
    assert first["outcome"]["kind"] == second["outcome"]["kind"] == "scf_not_converged"
    assert second["changes"] == {"mixing_beta": 0.025, "max_scf_iterations": 4}
    assert result.raw["settings"]["mixing_beta"] == 0.025  # the settings of the attempt that produced this
    assert result.properties == {}


def test_a_crashing_job_is_a_failed_measurement_with_the_reason(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(recipe={"python": "/bin/false"}, retry={"missing_output": 1})
    key = adapter.submit(job_for(silicon(), ["band_gap"]))
    assert wait_terminal(adapter, [key])[key] is JobStatus.FAILED
    result = adapter.fetch(key)
    assert result.error is not None and result.error.startswith("missing_output")
    assert "without result.json" in result.error and "after 1 retry" in result.error
    assert [a["changes"] for a in result.raw["attempts"]] == [{}, {}]


def test_cancelled_job(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter()
    slow = job_for(silicon(), ["band_gap"], options={"recipe": {"ecut": 600, "kpoint_density": 6.0}})
    key = adapter.submit(slow)
    wait_terminal(adapter, [key], timeout=30, until=lambda s: s[key] is JobStatus.RUNNING)
    attempt_dir = Path(adapter.work_dir) / key / "attempt-0"
    deadline = time.monotonic() + 20
    while not (attempt_dir / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    adapter.cancel(key)
    assert wait_terminal(adapter, [key], timeout=40)[key] is JobStatus.CANCELLED
    adapter.cancel(key)  # repeating is harmless
    result = adapter.fetch(key)
    assert result.status is JobStatus.CANCELLED and result.error and "cancelled" in result.error
    assert len(result.raw["attempts"]) == 1  # a cancelled job is never retried
    assert not (attempt_dir / "result.json").exists()


def test_submit_killed_between_queueing_and_recording_does_not_duplicate(
    make_adapter: AdapterFactory, adapter_kind: str, tmp_path: Path
) -> None:
    adapter = make_adapter()
    job = job_for(silicon(), ["band_gap"], campaign="crash-test")
    settings_file, job_file = tmp_path / "settings.json", tmp_path / "job.json"
    settings = {"work_dir": adapter.work_dir, "max_workers": 2, "recipe": adapter.settings.recipe.model_dump(),
                "resources": {"time": "10m"}}
    settings_file.write_text(json.dumps(settings))
    job_file.write_text(job.model_dump_json())
    crashed = subprocess.run([sys.executable, str(REPO / "tests" / "dft" / "crash_submit.py"), adapter_kind,
                              str(settings_file), str(job_file)], capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    assert "submitted" in crashed.stdout
    job_dir = Path(adapter.work_dir) / job.idempotency_key
    assert not (job_dir / "record.json").exists()  # the id was never recorded

    # matloop restarts and submits the same job again
    restarted = make_adapter()
    assert restarted.submit(job) == job.idempotency_key
    record = json.loads((job_dir / "record.json").read_text())
    assert len(record["attempts"]) == 1
    if adapter_kind == "slurm":
        rows = subprocess.run(["squeue", "-h", "-t", "all", f"--name={job.idempotency_key}", "-o", "%i|%Z"],
                              capture_output=True, text=True, check=True).stdout.split()
        here = [row.split("|")[0] for row in rows if row.split("|")[1] == str(job_dir / "attempt-0")]
        assert here == [record["attempts"][0]["scheduler_id"]]  # (earlier test sessions reused the key elsewhere)
    else:
        tasks = list((Path(adapter.work_dir) / ".localqueue" / "tasks").glob("*.json"))
        assert [t.stem for t in tasks] == [job.idempotency_key]
    assert wait_terminal(restarted, [job.idempotency_key])[job.idempotency_key] is JobStatus.SUCCEEDED
    assert 0.2 < restarted.fetch(job.idempotency_key).properties["band_gap"].value < 1.5
    assert (job_dir / "attempt-0" / "exit_code").read_text().strip() == "0"


# -- the local queue only -------------------------------------------------------------------------

# (SLURM enforces walltimes in whole minutes, too slow for a test; its TIMEOUT state is mapped in test_units.)
def test_local_queue_walltime_is_retried_with_more_time(make_local_adapter: AdapterFactory) -> None:
    adapter = make_local_adapter(resources={"time": 1}, retry={"timeout": 1, "time_factor": 2.0})
    slow = job_for(silicon(), ["band_gap"], options={"recipe": {"ecut": 600, "kpoint_density": 6.0}})
    key = adapter.submit(slow)
    assert wait_terminal(adapter, [key], timeout=60)[key] is JobStatus.FAILED
    result = adapter.fetch(key)
    assert result.error is not None and result.error.startswith("timeout")
    assert [a["outcome"]["scheduler_state"] for a in result.raw["attempts"]] == ["TIMEOUT", "TIMEOUT"]
    assert result.raw["attempts"][1]["changes"] == {"time": 2.0}


def test_local_queue_reattaches_after_restart_and_marks_vanished_jobs_lost(make_local_adapter: AdapterFactory) -> None:
    # max_workers=1: the second job waits in the on-disk queue while matloop "restarts"
    first = make_local_adapter(max_workers=1)
    slow = job_for(silicon(), ["band_gap"], options={"recipe": {"ecut": 600, "kpoint_density": 6.0}})
    quick = job_for(silicon(), ["band_gap"])
    slow_key, quick_key = first.submit(slow), first.submit(quick)
    assert first.poll([quick_key])[quick_key] is JobStatus.SUBMITTED
    del first

    restarted = make_local_adapter(max_workers=1)  # a new process would see exactly this: files on disk
    wait_terminal(restarted, [slow_key], timeout=30, until=lambda s: s[slow_key] is JobStatus.RUNNING)
    pid_file = Path(restarted.work_dir) / slow_key / "attempt-0" / "local.pid"
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_session(int(pid_file.read_text()), 9)  # the machine "reboots" under the running job
    states = wait_terminal(restarted, [slow_key, quick_key], timeout=60)
    assert states == {slow_key: JobStatus.LOST, quick_key: JobStatus.SUCCEEDED}
    lost = restarted.fetch(slow_key)
    assert lost.error is not None and "lost" in lost.error and "without an exit status" in lost.error
    assert not os.path.exists(Path(restarted.work_dir) / slow_key / "attempt-0" / "result.json")


def test_slurm_through_a_remote_shell_runs_a_real_job(slurm: None, gpaw: None, tmp_path: Path) -> None:
    """The SSH code path end to end, with ``bash -c`` in place of ``ssh login-node``: same command lines, same files."""
    from lab_adapters.dft import RemoteShellRunner, make_dft_adapter

    settings = {"work_dir": str(tmp_path / "remote"), "recipe": {"ecut": 200, "kpoint_density": 1.5, "empty_bands": 4}}
    adapter = make_dft_adapter("hpc", "slurm", settings, runner=RemoteShellRunner(["bash", "-c"]))
    key = adapter.submit(job_for(silicon(), ["band_gap", "total_energy"], campaign="remote"))
    assert wait_terminal(adapter, [key])[key] is JobStatus.SUCCEEDED
    result = adapter.fetch(key)
    assert 0.2 < result.properties["band_gap"].value < 1.5
    assert result.raw["scheduler"] == "slurm" and result.raw["attempts"][0]["scheduler_id"].isdigit()


def test_slurm_refuses_an_unknown_partition_with_sbatch_reason(slurm: None, tmp_path: Path) -> None:
    from lab_adapters.dft import make_dft_adapter
    from matloop.types import AdapterError

    adapter = make_dft_adapter("hpc", "slurm", {"work_dir": str(tmp_path), "resources": {"partition": "no-such-part"}})
    with pytest.raises(AdapterError, match="(?i)sbatch failed.*invalid partition") as info:
        adapter.submit(job_for(silicon(), ["band_gap"], campaign="bad-partition"))
    assert info.value.transient is False


def test_local_queue_relaxes_positions_for_real(make_local_adapter: AdapterFactory) -> None:
    """task=relax moves a displaced Si atom back towards its site (positions only: cheap, and no Pulay stress)."""
    from pymatgen.core import Structure

    displaced = silicon()
    displaced.translate_sites([1], [0.02, 0.0, 0.0])
    adapter = make_local_adapter(recipe={"task": "relax", "relax_cell": False, "fmax": 0.1})
    key = adapter.submit(job_for(displaced, ["total_energy"], campaign="relax"))
    assert wait_terminal(adapter, [key], timeout=120)[key] is JobStatus.SUCCEEDED
    result = adapter.fetch(key)
    final = result.raw["result"]["final_structure"]
    relaxed = Structure(final["cell"], final["symbols"], final["positions"], coords_are_cartesian=True)
    before = displaced.get_distance(0, 1)
    assert abs(relaxed.get_distance(0, 1) - silicon().get_distance(0, 1)) < abs(before - silicon().get_distance(0, 1))
    assert result.raw["settings"]["task"] == "relax"
    assert (Path(result.raw["attempts"][0]["dir"]) / "calc.relax.log").is_file()
