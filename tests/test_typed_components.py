"""Typed component configs: adapters refused by field and line, no secret in a spec, older specs still load,
and a run form (JSON schema) whose every component field has a description."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agent.adapters import AdapterConfigError, open_adapters
from agent.spec import Campaign, CampaignFileError, parse_campaign
from matloop.settings import reload_settings
from matloop.types import AdapterError
from tests.loop.conftest import branin_spec

HEAD = """\
name: t1
space:
  type: parametric
  parameters:
    - {name: x, type: continuous, bounds: [0.0, 1.0]}
objectives:
  - {property: y, goal: maximize}
budget: {max_experiments: 20}
measurements:
  - {properties: [y], adapter: lab}
adapters:
  lab:
"""
ENTRY_LINE = HEAD.count("\n") + 1  # the first line of the adapter entry; -1: its name (for a missing key)


def problem(entry: str) -> Any:
    with pytest.raises(CampaignFileError) as info:
        parse_campaign(HEAD + entry)
    [found] = info.value.problems
    return found


@pytest.mark.parametrize(("entry", "path", "expected", "line"), [
    ("    type: mace\n", "adapters.lab.type", "unknown adapter type 'mace'; use one of simlab, local, slurm, mlip", 0),
    ("    type: mlip\n    potential: mace\n", "adapters.lab", "potential 'mace' needs 'model_path'", -1),
    ("    url: http://lab:8000\n", "adapters.lab.type", "an adapter needs a 'type'", -1),
    ("    type: simlab\n    url: ftp://lab.example/\n", "adapters.lab.url", "is not an http(s) URL", 1),
    ("    type: simlab\n    url: lab.example:8000\n", "adapters.lab.url", "is not an http(s) URL", 1),
    ("    type: simlab\n    token: s3cret\n", "adapters.lab.token", "name it with 'token_env'", 1),
    ("    type: simlab\n    timeout: 0\n", "adapters.lab.timeout", "greater than 0", 1),
    ("    type: simlab\n    lab: {failure_rate: 2}\n", "adapters.lab.lab.failure_rate", "less than or equal to 1", 1),
    ("    type: simlab\n    settings: {lab: {failure_rat: 0.1}}\n", "adapters.lab.settings.lab.failure_rat",
     "unknown key", 1),
    ("    type: local\n    max_workerz: 2\n", "adapters.lab.max_workerz", "unknown key", 1),
    ("    type: slurm\n    settings: {recipe: {ecut: -1}}\n", "adapters.lab.settings.recipe.ecut", "greater than 0", 1),
])
def test_adapter_entries_are_refused_by_field_and_line(entry: str, path: str, expected: str, line: int) -> None:
    found = problem(entry)
    assert found.path == path and expected in found.message
    assert found.line == ENTRY_LINE + line


def test_a_literal_token_is_refused_in_a_sentence_that_says_what_to_write() -> None:
    message = problem("    type: simlab\n    token: s3cret\n").message
    assert "would be stored with the campaign" in message and "token_secret" in message and "s3cret" not in message


def test_older_stored_specs_load_in_the_typed_shape() -> None:
    """A spec stored before typed configs (``{type, settings}``, null ``url``/``token``) still loads for resume."""
    old = branin_spec().model_dump(mode="json")
    old["adapters"] = {"lab": {"type": "simlab", "url": None, "token": None,
                               "settings": {"timeout": 5.0, "lab": {"failure_rate": 0.1}}},
                       "dft": {"type": "local", "url": None, "token": None, "settings": {"max_workers": 2}}}
    old["generator"] = {"type": "grid", "settings": {"pool_size": 50}}
    old["surrogate"] = {"type": "gp", "settings": {"kernel": "matern", "cv_folds": 3}}
    old["acquisition"] = {"type": "auto", "settings": {"exploit_share": 0.25}}
    campaign = Campaign.model_validate(old)
    lab, dft = campaign.adapters["lab"], campaign.adapters["dft"]
    assert lab.timeout == 5.0 and lab.lab.failure_rate == 0.1 and dft.max_workers == 2
    assert campaign.generator.pool_size == 50 and campaign.surrogate.kernel == "matern"
    assert campaign.surrogate.cv_folds == 3 and campaign.acquisition.exploit_share == 0.25
    assert Campaign.model_validate(campaign.model_dump(mode="json")) == campaign  # and round-trips in the new shape
    with pytest.raises(ValidationError, match="would be stored with the campaign"):
        Campaign.model_validate(old | {"adapters": {"lab": {"type": "simlab", "token": "s3cret"}}})


@pytest.fixture
def lab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    with running_simlab(scenarios=["branin"], token="the-real-token", time_scale=1e-4) as handle:
        yield handle


def test_the_token_is_read_from_the_environment_when_the_run_starts(lab: Any, monkeypatch) -> None:
    spec = branin_spec(adapters={"lab": {"type": "simlab", "url": lab.url, "token_env": "MY_LAB_TOKEN"}})
    stored = json.dumps(spec.model_dump(mode="json"))
    monkeypatch.setenv("MY_LAB_TOKEN", "the-real-token")
    assert "the-real-token" not in stored and "MY_LAB_TOKEN" in stored
    with open_adapters(spec) as adapters:
        assert isinstance(adapters["lab"].stats(), dict)  # authorised: a wrong token is answered 403
    rotated_hash = spec.spec_hash()
    monkeypatch.setenv("MY_LAB_TOKEN", "a-rotated-token")  # rotation changes the value, not the spec
    assert branin_spec(adapters={"lab": {"type": "simlab", "url": lab.url, "token_env": "MY_LAB_TOKEN"}}
                       ).spec_hash() == rotated_hash
    with open_adapters(spec) as adapters, pytest.raises(AdapterError, match=r"refused the token \(403\)"):
        adapters["lab"].stats()  # the lab wants the old token: the new value is what was sent


def test_an_adapter_without_url_uses_matloop_simlab_url(lab: Any, monkeypatch) -> None:
    monkeypatch.setenv("MATLOOP_SIMLAB_URL", lab.url)
    monkeypatch.setenv("MATLOOP_SIMLAB_TOKEN", "the-real-token")
    reload_settings()
    try:
        spec = branin_spec(adapters={"lab": {"type": "simlab"}})
        with open_adapters(spec) as adapters:
            assert adapters["lab"].base_url == lab.url  # the external lab, not one started in-process
            assert adapters["lab"].stats() is not None
        monkeypatch.setenv("MATLOOP_SIMLAB_URL", "file:///etc/passwd")
        reload_settings()
        with pytest.raises(AdapterConfigError, match=r"MATLOOP_SIMLAB_URL \(for adapters.lab\): 'file:///etc/passwd' is not"):
            with open_adapters(spec):
                pass
    finally:
        monkeypatch.delenv("MATLOOP_SIMLAB_URL")
        reload_settings()


def _described(schema: dict[str, Any], name: str) -> list[str]:
    return [f"{name}.{k}" for k, v in schema["$defs"][name].get("properties", {}).items() if "description" not in v]


def test_the_run_form_schema_describes_every_component_field() -> None:
    """The Prefect run form renders ``Campaign``'s JSON schema: each component field shows a description."""
    schema = Campaign.model_json_schema()
    components = ["AutoGenerator", "GridGenerator", "SobolGenerator", "DatasetGenerator", "CrystalGenerator",
                  "CINNGenerator", "JanusGenerator", "RandomFieldGenerator", "PluginGenerator", "AutoSurrogate",
                  "GPSurrogate", "EnsembleSurrogate", "PriorSurrogate", "GreedyShareAcquisition", "PlainAcquisition",
                  "SimlabAdapter", "InProcessLab", "LocalDFTAdapter", "SlurmDFTAdapter", "FunnelSettings",
                  "EnsembleSettings", "JanusTraining", "JanusInversion", "JanusScoreModel"]
    missing = [field for name in components for field in _described(schema, name)]
    assert missing == []
    for field in ("generator", "surrogate", "acquisition", "adapters"):
        assert "description" in schema["properties"][field], field
    from prefect.utilities.callables import parameter_schema

    from flows.campaign import campaign_flow

    form = json.dumps(parameter_schema(campaign_flow).model_dump())  # what the served deployment's form shows
    assert "token_env" in form and "points per continuous parameter" in form and "PluginGenerator" in form


def test_a_campaign_stored_before_typed_configs_resumes_and_reads(sqlite_url: str) -> None:
    """The database holds the older shape (and its hash): the same campaign in the typed shape resumes; a stored
    literal token is dropped when the stored spec is read (history stays readable), never written back."""
    from agent.store import Database
    from agent.store.campaigns import get_campaign, load_spec, register_campaign
    from agent.store.migrate import upgrade
    from matloop.types import stable_hash

    spec = branin_spec(name="stored-old", generator={"type": "grid", "pool_size": 50})
    old = spec.model_dump(mode="json")
    old["adapters"] = {"lab": {"type": "simlab", "url": None, "token": "an-old-secret", "settings": {}}}
    old["generator"] = {"type": "grid", "settings": {"pool_size": 50}}
    old["surrogate"] = {"type": "gp", "settings": {}}
    old["acquisition"] = {"type": "auto", "settings": {}}
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with db.transaction() as session:
        record = register_campaign(session, spec)
        record.spec, record.spec_hash = old, stable_hash(old, length=64)  # as an older matloop stored it
    with db.transaction() as session:
        assert load_spec(get_campaign(session, "stored-old")) == spec
        record = register_campaign(session, spec)  # resume: not refused as a different spec
        assert record.spec_hash == spec.spec_hash() and "an-old-secret" not in json.dumps(record.spec)
    changed = branin_spec(name="stored-old", generator={"type": "grid", "pool_size": 60})
    with db.transaction() as session, pytest.raises(Exception, match="different spec"):
        register_campaign(session, changed)
    db.dispose()


def test_the_token_can_come_from_a_prefect_secret_block(prefect_api: str, lab: Any) -> None:
    """``token_secret`` names a Secret block on the Prefect server; a missing block is one sentence."""
    from prefect.blocks.system import Secret

    Secret(value="the-real-token").save("simlab-token", overwrite=True)
    spec = branin_spec(adapters={"lab": {"type": "simlab", "url": lab.url, "token_secret": "simlab-token"}})
    assert "the-real-token" not in json.dumps(spec.model_dump(mode="json"))
    with open_adapters(spec) as adapters:
        assert isinstance(adapters["lab"].stats(), dict)
    missing = branin_spec(adapters={"lab": {"type": "simlab", "url": lab.url, "token_secret": "no-such-block"}})
    with pytest.raises(AdapterConfigError, match="adapters.lab.token_secret: cannot read the Prefect Secret block "
                                                 "'no-such-block'"):
        with open_adapters(missing):
            pass


def test_an_older_auto_generator_with_settings_is_read_as_what_auto_picks() -> None:
    """``{type: auto, settings: {...}}`` (the perovskite template before typed configs) is the crystal funnel on a
    crystal space, and a grid or Sobol pool by its settings on a parametric one."""
    import yaml

    from cli.campaign_files import template_text

    data = yaml.safe_load(template_text("perovskite"))
    data["generator"] = {"type": "auto", "settings": {"pool_size": 300, "temperature": 2.0}}
    generator = Campaign.model_validate(data).generator
    assert generator.type == "crystal" and generator.temperature == 2.0 and generator.pool_size == 300
    assert branin_spec(generator={"type": "auto", "settings": {"size": 64}}).generator.type == "sobol"
    assert branin_spec(generator={"type": "auto", "settings": {"levels": 5}}).generator.type == "grid"
    assert branin_spec(generator={"type": "auto", "settings": {"pool_size": 9}}).generator.type == "auto"


def test_reading_a_campaign_file_imports_no_torch() -> None:
    """The typed configs live with their packages but import none of their heavy code (a fresh interpreter)."""
    import os
    import subprocess
    import sys

    code = ("import sys; from agent.spec import parse_campaign; from cli.campaign_files import template_text; "
            "parse_campaign(template_text('oer')); print(sorted(m for m in ('torch', 'pymatgen') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
