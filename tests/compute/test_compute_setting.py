"""The compute setting: typed, from the environment or the CLI, and refused in one sentence when it is wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError
from typer.testing import CliRunner

from cli import app
from flows.compute import ComputeUnavailable, open_fan_out
from matloop.compute import Compute, DaskScheduler, InProcess, LocalDaskCluster, chunks, map_chunked
from matloop.settings import ComputeSettingError, get_compute

CAMPAIGN = Path(__file__).resolve().parents[2] / "agent" / "templates" / "oer.yaml"


@pytest.mark.parametrize("given, expected", [
    ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
    ("scheduler", "tcp://scheduler:8786"),
    ("  tls://dask.example.org:9000 ", "tls://dask.example.org:9000"),
    ("tcp://[::1]:8786", "tcp://[::1]:8786"),
])
def test_scheduler_addresses_are_normalised(given: str, expected: str) -> None:
    assert DaskScheduler(address=given).address == expected


@pytest.mark.parametrize("bad, why", [
    ("http://scheduler:8786", "'http' is not one of tcp, tls, ws, wss, ucx"),
    ("tcp://scheduler:99999", "its port is not a number from 1 to 65535"),
    ("tcp://scheduler:port", "its port is not a number"),
    ("tcp://:8786", "it needs a host"),
    ("tcp://scheduler:8786/path", "nothing after the port"),
    ("sched uler", "is not a Dask scheduler address"),
    ("", "is not a Dask scheduler address"),
])
def test_a_bad_address_is_one_sentence(bad: str, why: str) -> None:
    with pytest.raises(ValidationError) as info:
        DaskScheduler(address=bad)
    message = info.value.errors()[0]["msg"]
    assert why in message and "\n" not in message and "give one like tcp://scheduler-host:8786" in message


def test_the_environment_gives_the_setting_as_json_or_field_by_field(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MATLOOP_COMPUTE", "MATLOOP_COMPUTE__TYPE", "MATLOOP_COMPUTE__N_WORKERS"):
        monkeypatch.delenv(key, raising=False)
    assert get_compute() == InProcess()
    monkeypatch.setenv("MATLOOP_COMPUTE__TYPE", "local_cluster")
    monkeypatch.setenv("MATLOOP_COMPUTE__N_WORKERS", "3")
    assert get_compute() == LocalDaskCluster(n_workers=3)
    monkeypatch.delenv("MATLOOP_COMPUTE__TYPE")
    monkeypatch.delenv("MATLOOP_COMPUTE__N_WORKERS")
    monkeypatch.setenv("MATLOOP_COMPUTE", '{"type": "dask_scheduler", "address": "sched:9999"}')
    assert get_compute() == DaskScheduler(address="tcp://sched:9999")
    monkeypatch.setenv("MATLOOP_COMPUTE", '{"type": "dask_scheduler", "address": "ftp://sched"}')
    with pytest.raises(ComputeSettingError, match=r"^MATLOOP_COMPUTE\.address: 'ftp://sched' is not a Dask"):
        get_compute()
    monkeypatch.setenv("MATLOOP_COMPUTE", '{"type": "kubernetes"}')
    with pytest.raises(ComputeSettingError, match='give a "type" of in_process, local_cluster or dask_scheduler'):
        get_compute()
    monkeypatch.setenv("MATLOOP_COMPUTE", '{"type": "local_cluster", "n_workers": 0}')
    with pytest.raises(ComputeSettingError, match=r"^MATLOOP_COMPUTE\.n_workers: input should be greater"):
        get_compute()
    assert TypeAdapter(Compute).validate_python({"type": "in_process"}) == InProcess()


def test_run_refuses_a_bad_setting_in_one_sentence_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MATLOOP_COMPUTE", raising=False)
    runner = CliRunner()
    cases = [
        (["--dask-address", "http://sched:8786"], "error: --dask-address: 'http://sched:8786' is not a Dask scheduler"),
        (["--dask-workers", "0"], "error: --dask-workers: input should be greater than or equal to 1"),
        (["--compute", "in_process", "--dask-workers", "2"], "error: --dask-workers applies to --compute local_cluster"),
    ]
    for options, expected in cases:
        result = runner.invoke(app, ["run", str(CAMPAIGN), *options])
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(expected), result.output
    monkeypatch.setenv("MATLOOP_COMPUTE", "not json")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1 and result.output.startswith("error: MATLOOP_COMPUTE: give a \"type\""), result.output


def test_an_unreachable_scheduler_is_one_sentence() -> None:
    started = time.monotonic()
    with pytest.raises(ComputeUnavailable) as info, open_fan_out(DaskScheduler(address="tcp://127.0.0.1:9",
                                                                               connect_timeout=2)):
        pass
    assert str(info.value).startswith("could not use the Dask scheduler at tcp://127.0.0.1:9: ")
    assert "\n" not in str(info.value) and time.monotonic() - started < 60


def test_chunks_are_fixed_by_the_input_and_results_come_back_in_order() -> None:
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert map_chunked(lambda part: [x * 10 for x in part], list(range(7)), 3) == [0, 10, 20, 30, 40, 50, 60]
    with pytest.raises(RuntimeError, match="a chunk of 3 items gave 2 results"):
        map_chunked(lambda part: part[:2], list(range(6)), 3, name="bad")
