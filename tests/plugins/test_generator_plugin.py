"""Generator plug-ins: registered by entry point, named by the campaign file, never imported from it.

The example plug-in (``tests/plugins/example_generator``) is installed the way pip leaves an installed
package: its source on ``sys.path`` and a ``*.dist-info`` folder with ``entry_points.txt`` beside it,
which is what ``importlib.metadata`` reads. Nothing about the plug-in is known to matloop's code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.adapters import open_adapters
from agent.loop import run_campaign
from agent.spec import Campaign, CampaignFileError, parse_campaign
from agent.store.models import CandidateRecord
from tests.loop.conftest import branin_spec
from tests.loop.test_loop import make_ctx
from tests.spec.test_campaign_files import BASE

PLUGIN = Path(__file__).parent / "example_generator"


@pytest.fixture
def simlab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    with running_simlab(scenarios=["branin"], time_scale=1e-4) as handle:
        yield handle


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The example package installed into a temporary site folder (metadata + entry point), on ``sys.path``."""
    site = tmp_path / "site"
    info = site / "matloop_example_generator-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: matloop-example-generator\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[matloop.generators]\nexample-random = matloop_example_generator:make_generator\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(PLUGIN / "src"))
    return "example-random"


def test_a_registered_plugin_generator_runs_through_the_loop(sqlite_url: str, simlab: Any,
                                                             installed_plugin: str) -> None:
    spec = branin_spec(simlab.url, simlab.token, name="branin-plugin",
                       generator={"type": "plugin", "name": installed_plugin, "settings": {"size": 32}})
    with open_adapters(spec) as adapters:
        ctx = make_ctx(sqlite_url, spec, adapters)
        outcome = run_campaign(ctx)
    assert outcome.status == "stopped"
    with ctx.db.reading() as session:
        origins = set(session.scalars(select(CandidateRecord.origin)))
    assert origins == {"example-random"}  # every candidate came from the plug-in
    ctx.db.dispose()


def test_plugin_settings_are_checked_by_its_config_model_with_the_file(installed_plugin: str) -> None:
    text = BASE + f"generator: {{type: plugin, name: {installed_plugin}, settings: {{sise: 3}}}}\n"
    with pytest.raises(CampaignFileError) as info:
        parse_campaign(text)
    [problem] = info.value.problems
    assert problem.path == "generator.settings" and "plug-in 'example-random' refuses" in problem.message
    assert "sise" in problem.message and problem.line == BASE.count("\n") + 1
    good = parse_campaign(BASE + f"generator: {{type: plugin, name: {installed_plugin}, settings: {{size: 3}}}}\n")
    assert good.generator.name == installed_plugin


@pytest.mark.parametrize("generator", [
    {"type": "matloop_example_generator:make_generator"},
    {"type": "plugin", "name": "matloop_example_generator:make_generator"},
])
def test_a_module_factory_string_is_refused_even_when_importable(installed_plugin: str, generator: dict[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The module is importable here, yet a campaign file naming it is refused: code comes only by entry point."""
    import sys

    monkeypatch.delitem(sys.modules, "matloop_example_generator", raising=False)
    with pytest.raises(ValueError, match="names code to import, and a campaign file may not.*matloop.generators"):
        branin_spec(generator=generator)
    assert "matloop_example_generator" not in sys.modules  # nothing was imported on the file's say-so


def test_an_uninstalled_plugin_is_named_with_the_file() -> None:
    with pytest.raises(CampaignFileError, match="no generator plug-in 'example-random' is installed"):
        parse_campaign(BASE + "generator: {type: plugin, name: example-random}\n")
    campaign = Campaign.model_validate(branin_spec().model_dump(mode="json")
                                       | {"generator": {"type": "plugin", "name": "example-random"}})
    assert campaign.generator.name == "example-random"  # the format is fine; only building needs the plug-in
