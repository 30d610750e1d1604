"""The parts of the DFT adapters that need no queue: settings, state mapping, command lines, retry rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lab_adapters.dft import DFTSettings, RemoteShellRunner, SlurmScheduler, SSHRunner, make_dft_adapter
from lab_adapters.dft.failures import classify, plan_retry
from lab_adapters.dft.runner import LocalRunner
from lab_adapters.dft.scheduler import SLURM_STATES, SchedJob, SchedState, map_slurm_state
from lab_adapters.dft.settings import RecipeSettings, Resources, RetryPolicy, parse_seconds, slurm_time
from lab_adapters.dft.structure import kpoint_grid
from matloop.types import AdapterError, Candidate, CandidateKind, JobRequest

from .dft_helpers import job_for, nacl, silicon


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("PENDING", SchedState.PENDING), ("RUNNING", SchedState.RUNNING), ("COMPLETING", SchedState.RUNNING),
        ("COMPLETED", SchedState.COMPLETED), ("FAILED", SchedState.FAILED), ("TIMEOUT", SchedState.TIMEOUT),
        ("NODE_FAIL", SchedState.NODE_FAIL), ("CANCELLED by 0", SchedState.CANCELLED),
        ("OUT_OF_MEMORY", SchedState.OUT_OF_MEMORY), ("BOOT_FAIL", SchedState.NODE_FAIL),
    ],
)
def test_slurm_states_map_onto_scheduler_states(text: str, state: SchedState) -> None:
    assert map_slurm_state(text) is state


def test_an_unknown_slurm_state_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="unknown SLURM job state 'EXPLODED'"):
        map_slurm_state("EXPLODED")
    assert all(s.is_terminal == (s not in (SchedState.PENDING, SchedState.RUNNING)) for s in SLURM_STATES.values())


def test_sbatch_command_line_takes_partition_account_time_and_resources_per_fidelity() -> None:
    settings = DFTSettings.model_validate({
        "resources": {"partition": "debug", "time": "30m"},
        "fidelities": {"accurate": {"resources": {"partition": "standard", "account": "mat123", "time": "2h",
                                                  "cpus_per_task": 8, "mem": "16G", "qos": "high",
                                                  "extra_sbatch": ["--constraint=cpu"]},
                                    "recipe": {"ecut": 520}}},
    })
    scheduler = SlurmScheduler(LocalRunner())
    fast = scheduler.sbatch_argv("ml-abc", "/w/ml-abc/attempt-0", "/w/ml-abc/attempt-0/job.sh",
                                 settings.resources_for("fast"))
    assert fast[:3] == ["sbatch", "--parsable", "--job-name=ml-abc"]
    assert "--partition=debug" in fast and "--time=0-00:30:00" in fast and fast[-1].endswith("job.sh")
    assert not any(a.startswith("--account") for a in fast)
    accurate = scheduler.sbatch_argv("ml-abc", "/w", "/w/job.sh", settings.resources_for("accurate"))
    for flag in ("--partition=standard", "--account=mat123", "--time=0-02:00:00", "--cpus-per-task=8",
                 "--mem=16G", "--qos=high", "--constraint=cpu", "--chdir=/w", "--output=/w/slurm-%j.out"):
        assert flag in accurate
    assert settings.recipe_for("accurate").ecut == 520 and settings.recipe_for("fast").ecut == 400


def test_times_read_like_people_and_slurm_write_them() -> None:
    assert parse_seconds("90m") == 5400 and parse_seconds("1-02:00:00") == 93600 and parse_seconds("02:30") == 9000
    assert slurm_time(61) == "0-00:02:00" and slurm_time(86400 * 2) == "2-00:00:00"
    with pytest.raises(ValueError, match="cannot read time 'soon'"):
        parse_seconds("soon")
    with pytest.raises(ValidationError, match="not a SLURM memory size"):
        Resources(mem="lots")


def test_ssh_runner_builds_one_quoted_remote_command() -> None:
    runner = SSHRunner("login1.cluster", options=["-p", "2222"])
    argv = runner.command_line(["sbatch", "--parsable", "--job-name=ml-x", "/scratch/my dir/job.sh"])
    assert argv == ["ssh", "-o", "BatchMode=yes", "-p", "2222", "login1.cluster",
                    "sbatch --parsable --job-name=ml-x '/scratch/my dir/job.sh'"]
    with pytest.raises(ValueError, match="invalid SSH host"):
        SSHRunner("-oProxyCommand=evil")
    with pytest.raises(ValueError, match="work_dir"):
        make_dft_adapter("hpc", "slurm", {"ssh_host": "login1"})


def test_remote_shell_runner_moves_files_and_runs_commands_through_a_shell(tmp_path: Path) -> None:
    """The SSH code path, with ``bash -c`` standing in for ``ssh host``: files go as one tar stream."""
    runner = RemoteShellRunner(["bash", "-c"])
    target = tmp_path / "a dir" / "job"
    runner.put_files(str(target), {"job.sh": "#!/bin/bash\necho hi\n", "sub/in.json": '{"x": 1}'})
    assert (target / "sub" / "in.json").read_text() == '{"x": 1}'
    assert runner.read_file(str(target / "job.sh")) == "#!/bin/bash\necho hi\n"
    assert runner.read_file(str(target / "missing")) is None
    result = runner.run(["bash", str(target / "job.sh")])
    assert result.ok and result.stdout == "hi\n"
    assert not runner.run(["false"]).ok


def test_retry_plans_change_what_the_failure_calls_for() -> None:
    recipe, resources, policy = RecipeSettings(), Resources(time=600, mem="4G"), RetryPolicy(out_of_memory=1)
    scf = plan_retry("scf_not_converged", [], recipe, resources, policy, default_mixing_beta=0.05)
    assert scf is not None and scf.changes == {"mixing_beta": 0.025, "max_scf_iterations": 400}
    assert scf.recipe.physics_hash() == recipe.physics_hash()  # a retry stays comparable
    timeout = plan_retry("timeout", [], recipe, resources, policy, 0.05)
    assert timeout is not None and timeout.resources.time == 1200
    oom = plan_retry("out_of_memory", [], recipe, resources, policy, 0.05)
    assert oom is not None and oom.resources.mem == "8G"
    node = plan_retry("node_failure", [], recipe, resources, policy, 0.05)
    assert node is not None and node.changes == {}
    assert plan_retry("timeout", ["timeout"], recipe, resources, policy, 0.05) is None  # the policy allows one
    assert plan_retry("error", [], recipe, resources, policy, 0.05) is None  # deterministic: never retried
    assert plan_retry("relax_not_converged", [], recipe, resources, policy, 0.05) is None


def test_outcomes_come_from_result_json_first_then_from_the_scheduler() -> None:
    job = SchedJob("7", "ml-x", SchedState.FAILED, "NonZeroExitCode")
    assert classify(job, {"status": "failed", "failure": "scf_not_converged", "message": "m"}).kind == \
        "scf_not_converged"
    assert classify(SchedJob("7", "x", SchedState.TIMEOUT), None).kind == "timeout"
    assert classify(SchedJob("7", "x", SchedState.NODE_FAIL), None).kind == "node_failure"
    assert classify(SchedJob("7", "x", SchedState.OUT_OF_MEMORY), None).kind == "out_of_memory"
    missing = classify(SchedJob("7", "x", SchedState.COMPLETED), None, "[gpaw.out] Traceback ...")
    assert missing.kind == "missing_output" and "Traceback" in missing.message
    assert classify(job, {"status": "ok"}, cancel_requested=True).kind == "cancelled"
    assert classify(SchedJob("7", "x", SchedState.COMPLETED), {"status": "ok"}).kind == "ok"


def test_physics_hash_ignores_convergence_knobs_but_not_physics() -> None:
    base = RecipeSettings()
    assert base.physics_hash() == RecipeSettings(mixing_beta=0.01, max_scf_iterations=999).physics_hash()
    assert base.physics_hash() != RecipeSettings(ecut=401).physics_hash()
    assert base.physics_hash() != RecipeSettings(smearing={"width": 0.1}).physics_hash()


def test_kpoint_grid_follows_density() -> None:
    assert kpoint_grid(silicon().lattice, 1.5) == [4, 4, 4]  # 2π·(√3/5.43 Å)·1.5 = 3.006 → 4
    assert kpoint_grid([[10, 0, 0], [0, 10, 0], [0, 0, 30]], 2.0) == [2, 2, 1]


def test_bad_jobs_are_refused_at_submit_with_the_reason(tmp_path: Path) -> None:
    adapter = make_dft_adapter("dft", "local", {"work_dir": str(tmp_path)})
    with pytest.raises(AdapterError, match=r"cannot compute \['hardness'\]"):
        adapter.submit(job_for(silicon(), ["hardness"]))
    point = Candidate.point({"x": 1.0})
    with pytest.raises(AdapterError, match="candidate.structure is empty"):
        adapter.submit(JobRequest(idempotency_key="ml-1", campaign="c", candidate=point, fidelity="f",
                                  properties=["band_gap"]))
    with pytest.raises(AdapterError, match="ecutt"):
        adapter.submit(job_for(nacl(), ["band_gap"], options={"recipe": {"ecutt": 100}}))
    with pytest.raises(AdapterError, match="not usable as a job name"):
        adapter.submit(job_for(nacl(), ["band_gap"]).model_copy(update={"idempotency_key": "../etc"}))
    bad = Candidate(kind=CandidateKind.STRUCTURE, structure={"lattice": "nope"})
    with pytest.raises(AdapterError, match="not a pymatgen Structure dict"):
        adapter.submit(JobRequest(idempotency_key="ml-2", campaign="c", candidate=bad, fidelity="f",
                                  properties=["band_gap"]))
    assert not list(tmp_path.glob("ml-*"))  # nothing half-submitted is left behind
    assert adapter.poll(["ml-never"]) == {"ml-never": "lost"}


def test_settings_refuse_unknown_keys_by_name() -> None:
    with pytest.raises(ValidationError, match="max_worker"):
        DFTSettings.model_validate({"max_worker": 2})
    with pytest.raises(ValueError, match="unknown DFT adapter type 'pbs'"):
        make_dft_adapter("x", "pbs", {})
