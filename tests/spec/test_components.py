"""The generator, surrogate and acquisition a campaign file names are checked when the file is read, with their line.

Before, a misspelt ``generator.type`` or surrogate setting passed ``matloop validate`` and failed only
when the loop first built the generator or fitted the surrogate (after the initial design).
"""

from __future__ import annotations

import pytest

from agent.spec import CampaignFileError, load_campaign, parse_campaign
from tests.spec.test_campaign_files import BASE, one_problem

GENERATOR_LINE = BASE.count("\n") + 1  # the appended line


@pytest.mark.parametrize(
    ("appended", "path", "expected"),
    [
        ("generator: {type: gird}", "generator.type", "unknown generator 'gird'; use auto, grid, sobol"),
        ("generator: {type: 'no_such_module:make'}", "generator.type",
         "'no_such_module:make' names code to import, and a campaign file may not"),
        ("generator: {type: 'generators.pool:NoSuchPool'}", "generator.type", "entry-point group 'matloop.generators'"),
        ("generator: {type: plugin, name: 'generators.pool:GridPool'}", "generator.name", "names code to import"),
        ("generator: {type: plugin, name: no-such-plugin}", "generator.name",
         "no generator plug-in 'no-such-plugin' is installed"),
        ("generator: {type: grid, settings: {level: 3}}", "generator.settings.level", "unknown key"),
        ("generator: {type: grid, level: 3}", "generator.level", "unknown key"),
        ("generator: {type: sobol, settings: {sise: 10}}", "generator.settings.sise", "unknown key"),
        ("generator: {type: sobol, size: 0}", "generator.size", "greater than or equal to 1"),
        ("generator: {type: cinn, settings: {epochz: 3}}", "generator.settings.epochz", "unknown key"),
        ("generator: {type: grid, levels: 3, settings: {levels: 4}}", "generator",
         "['levels'] given both in 'settings' and beside it"),
        ("surrogate: {type: gpp}", "surrogate.type", "unknown surrogate 'gpp'; use one of auto, gp, ensemble, prior"),
        ("surrogate: {type: gp, settings: {kernal: matern}}", "surrogate.settings.kernal", "unknown key"),
        ("surrogate: {type: gp, settings: {kernel: rbf}}", "surrogate.settings.kernel", "'auto', 'matern' or 'additive'"),
        ("surrogate: {type: gp, kernel: rbf}", "surrogate.kernel", "'auto', 'matern' or 'additive'"),
        ("surrogate: {type: ensemble, settings: {ensemble: {members: 3}}}", "surrogate.settings.ensemble.members",
         "unknown key"),
        ("surrogate: {type: gp, cv_folds: -1}", "surrogate.cv_folds", "greater than or equal to 0"),
        ("acquisition: {type: ts}", "acquisition.type", "unknown acquisition 'ts'"),
    ],
)
def test_a_component_the_loop_would_refuse_is_refused_with_the_file(appended: str, path: str, expected: str) -> None:
    """Each problem is named at its field (in the older ``settings`` shape too) with its line."""
    problem = one_problem(BASE + appended + "\n")
    assert problem.path == path
    assert expected in problem.message
    assert problem.line == GENERATOR_LINE


def test_good_components_and_the_loops_own_settings_pass() -> None:
    for appended in ("generator: {type: grid, settings: {levels: 3, pool_size: 50}}",
                     "generator: {type: grid, levels: 3, pool_size: 50}",
                     "generator: {type: sobol, settings: {size: 64}}",
                     "generator: {type: cinn, settings: {epochs: 3, max_candidates: 8}}",
                     "generator: {type: cinn, epochs: 3, max_candidates: 8}",
                     "surrogate: {type: gp, settings: {kernel: additive, cv_folds: 3}}",
                     "surrogate: {type: gp, kernel: additive, cv_folds: 3}"):
        parse_campaign(BASE + appended + "\n")
    legacy = parse_campaign(BASE + "generator: {type: 'generators.inverse:CINNGenerator', settings: {epochs: 3}}\n")
    assert legacy.generator.type == "cinn" and legacy.generator.epochs == 3  # a built-in's old path: its name
    flat = parse_campaign(BASE + "generator: {type: grid, levels: 3, pool_size: 50}\n")
    old = parse_campaign(BASE + "generator: {type: grid, settings: {levels: 3, pool_size: 50}}\n")
    assert flat == old and flat.generator.levels == 3 and flat.generator.pool_size == 50


def test_a_dataset_path_is_resolved_next_to_the_campaign_file(tmp_path) -> None:
    campaign = tmp_path / "c.yaml"
    campaign.write_text(BASE + "generator: {type: dataset, path: library.csv}\n")
    with pytest.raises(CampaignFileError) as info:
        load_campaign(campaign)
    [problem] = info.value.problems
    assert problem.path == "generator.path" and str(tmp_path / "library.csv") in problem.message
    (tmp_path / "library.csv").write_text("x,n,c\n0.5,2,a\n")
    assert load_campaign(campaign).generator.type == "dataset"


def test_seed_cifs_are_read_next_to_the_campaign_file(tmp_path, monkeypatch) -> None:
    """A broken, foreign or missing seed CIF is named with its line when the file is read, whatever the cwd."""
    import yaml
    from pymatgen.core import Lattice, Structure

    from cli.campaign_files import template_text

    data = yaml.safe_load(template_text("dft-binaries"))
    data["space"]["seed_cifs"] = ["seeds/nacl.cif", "seeds/broken.cif", "seeds/missing.cif"]
    (tmp_path / "seeds").mkdir()
    Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(tmp_path / "seeds" / "nacl.cif"))
    (tmp_path / "seeds" / "broken.cif").write_text("data_x\nloop_\n_atom_site_label\nQq1\n")
    campaign = tmp_path / "c.yaml"
    campaign.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.chdir("/")  # relative to the campaign file, not to wherever the command runs
    with pytest.raises(CampaignFileError) as info:
        load_campaign(campaign)
    found = {p.path: p.message for p in info.value.problems}
    assert set(found) == {"space.seed_cifs[1]", "space.seed_cifs[2]"}
    assert "unknown element 'Qq1'" in found["space.seed_cifs[1]"]
    assert f"{tmp_path / 'seeds' / 'missing.cif'}: cannot read" in found["space.seed_cifs[2]"]
    data["space"]["seed_cifs"] = ["seeds/nacl.cif"]
    campaign.write_text(yaml.safe_dump(data, sort_keys=False))
    assert load_campaign(campaign).space.seed_cifs == ["seeds/nacl.cif"]
    from generators.crystal.substitution import SubstitutionGenerator

    space = load_campaign(campaign).space
    names = [t.name for t in SubstitutionGenerator().templates(space, base_dir=tmp_path)]  # the loop's resolution
    assert any("nacl.cif" in name for name in names), names
    # campaign text with no file behind it: relative paths cannot be resolved yet, so they are not judged
    from agent.spec import parse_campaign

    data["space"]["seed_cifs"] = ["seeds/missing.cif"]
    assert parse_campaign(yaml.safe_dump(data, sort_keys=False)).space.seed_cifs == ["seeds/missing.cif"]


def test_generator_data_files_are_found_next_to_the_campaign_file(tmp_path, monkeypatch) -> None:
    """The funnel's reference CSV and MLIP model file: named with their line when missing, read from the
    campaign file's folder by the loop, whatever the working directory (a run from the Prefect UI has another)."""
    import shutil

    import yaml

    from cli.campaign_files import template_text
    from generators.base import GenerationContext
    from generators.registry import build_generator
    from tests.crystal.conftest import DATA

    data = yaml.safe_load(template_text("dft-binaries"))
    data["generator"] = {"type": "crystal", "reference_formulas": "refs/formulas.csv",
                         "funnel": {"novelty_reference": "refs/known.csv", "mlip": {"model_path": "models/mace.model"}}}
    campaign = tmp_path / "c.yaml"
    campaign.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.chdir("/")
    with pytest.raises(CampaignFileError) as info:
        load_campaign(campaign)
    found = {p.path: p.message for p in info.value.problems}
    assert found == {
        "generator.reference_formulas": f"no file at {tmp_path / 'refs' / 'formulas.csv'}",
        "generator.funnel.novelty_reference": f"no file at {tmp_path / 'refs' / 'known.csv'}",
        "generator.funnel.mlip.model_path": f"no file at {tmp_path / 'models' / 'mace.model'}",
    }
    assert all(p.line is not None for p in info.value.problems)

    (tmp_path / "refs").mkdir()
    shutil.copy(DATA / "perov5_sample.csv", tmp_path / "refs" / "known.csv")
    del data["generator"]["reference_formulas"], data["generator"]["funnel"]["mlip"]
    campaign.write_text(yaml.safe_dump(data, sort_keys=False))
    loaded = load_campaign(campaign)
    generator = build_generator(loaded.generator, loaded.space, base_dir=tmp_path)
    generator.propose(loaded.space, GenerationContext(seed=0, base_dir=tmp_path), 8)  # the loop's resolution
    assert generator._reference is not None and len(generator._reference) > 0
