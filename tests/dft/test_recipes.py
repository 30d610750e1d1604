"""QE and VASP recipes: the inputs they write and the outputs they parse (no QE or VASP needed).

The output samples in ``samples/`` were written for these tests following the
documented layout of pw.x 7.x and VASP 5.4/6.x outputs; each file's header says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lab_adapters.dft.recipes import get_recipe
from lab_adapters.dft.recipes.bandgap import gap_from_bands
from lab_adapters.dft.recipes.qe_output import RY_TO_EV, parse_pw_output
from lab_adapters.dft.recipes.vasp_output import parse_outcar
from lab_adapters.dft.settings import RecipeSettings

from .dft_helpers import nacl, silicon

SAMPLES = Path(__file__).with_name("samples")
DEBIAN_PYTHON = "/usr/bin/python3"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# -- Quantum ESPRESSO --------------------------------------------------------------------------

def test_qe_insulator_energy_and_gap_from_homo_lumo() -> None:
    result = parse_pw_output(sample("qe_si_scf.out"))
    assert result["status"] == "ok" and result["failure"] is None
    assert result["energy"] == pytest.approx(-15.84445019 * RY_TO_EV)  # the '!' line, not the unconverged ones
    assert result["band_gap"] == pytest.approx(6.8078 - 6.2549)
    assert result["natoms"] == 2


def test_qe_metal_with_smearing_has_no_gap_and_reads_run_together_numbers() -> None:
    result = parse_pw_output(sample("qe_metal_smearing.out"))
    assert result["status"] == "ok"
    assert result["energy"] == pytest.approx(-4.18725378 * RY_TO_EV)
    assert result["band_gap"] == 0.0


def test_qe_spin_polarised_gap_spans_both_channels() -> None:
    result = parse_pw_output(sample("qe_spin_insulator.out"))
    assert result["band_gap"] == pytest.approx(2.2)


def test_qe_unconverged_scf_and_truncated_output_are_failures_with_reasons() -> None:
    unconverged = parse_pw_output(sample("qe_unconverged.out"))
    assert unconverged["status"] == "failed" and unconverged["failure"] == "scf_not_converged"
    assert "2 iterations" in unconverged["message"]
    truncated = parse_pw_output(sample("qe_si_scf.out").split("JOB DONE")[0])
    assert truncated["failure"] == "missing_output"


def test_qe_input_has_settings_in_qe_units_and_pseudopotentials_from_settings() -> None:
    settings = RecipeSettings(code="qe", ecut=408.2, kpoint_density=2.0, pseudo_dir="/opt/pseudo",
                              pseudopotentials={"Na": "Na.pbe-spn-kjpaw_psl.1.0.0.UPF", "Cl": "Cl.pbe-n-rrkjus.UPF"},
                              smearing={"kind": "marzari-vanderbilt", "width": 0.1}, task="relax")
    text = get_recipe("qe").pw_input(nacl(), settings)
    assert "calculation = 'vc-relax'" in text and "cell_dofree = 'all'" in text
    assert "pseudo_dir = '/opt/pseudo'" in text
    assert "ecutwfc = 30.002" in text  # 408.2 eV in Ry
    assert "smearing = 'marzari-vanderbilt'" in text
    assert "  Na 22.9898 Na.pbe-spn-kjpaw_psl.1.0.0.UPF" in text and "Cl.pbe-n-rrkjus.UPF" in text
    assert "nat = 2" in text and "ntyp = 2" in text
    kpoints = text.split("K_POINTS automatic\n")[1].split()
    assert kpoints[3:] == ["0", "0", "0"] and kpoints[0] == kpoints[1] == kpoints[2]
    assert "mixing_beta = 0.7" in text


def test_qe_refuses_missing_pseudopotentials_naming_the_setting() -> None:
    settings = RecipeSettings(code="qe", pseudo_dir="/opt/pseudo", pseudopotentials={"Na": "Na.UPF"})
    with pytest.raises(ValueError, match=r"recipe.pseudopotentials has no UPF file for \['Cl'\]"):
        get_recipe("qe").check(nacl(), settings, ["band_gap"])
    with pytest.raises(ValueError, match="recipe.pseudo_dir is required"):
        get_recipe("qe").check(nacl(), RecipeSettings(code="qe"), ["band_gap"])
    with pytest.raises(ValueError, match=r"reference_energies for \['Cl', 'Na'\]"):
        get_recipe("qe").check(nacl(), RecipeSettings(code="qe", pseudo_dir="/p", pseudopotentials={
            "Na": "a", "Cl": "b"}), ["formation_energy"])


# -- VASP ----------------------------------------------------------------------------------------

def test_vasp_energy_is_sigma_to_zero_and_gap_from_the_eigenvalue_listing() -> None:
    result = parse_outcar(sample("vasp6_si_OUTCAR"))
    assert result["status"] == "ok"
    assert result["energy"] == pytest.approx(-10.84456210)
    assert result["band_gap"] == pytest.approx(6.7922 - 6.1964)
    assert result["natoms"] == 2


def test_vasp_unconverged_electronic_loop_in_vasp5_and_vasp6() -> None:
    for name in ("vasp6_unconverged_OUTCAR", "vasp5_nelm_OUTCAR"):
        result = parse_outcar(sample(name))
        assert result["failure"] == "scf_not_converged", name
        assert "NELM=4" in result["message"]


def test_vasp_truncated_outcar_and_unfinished_relaxation() -> None:
    text = sample("vasp6_si_OUTCAR")
    assert parse_outcar(text.split("General timing")[0])["failure"] == "missing_output"
    assert parse_outcar(text, incar_nsw=60)["failure"] == "relax_not_converged"
    relaxed = text.replace(" General timing", " reached required accuracy - stopping structural energy "
                                             "minimisation\n General timing")
    assert parse_outcar(relaxed, incar_nsw=60)["status"] == "ok"


def test_vasp_inputs_and_potcar_assembly_from_settings() -> None:
    settings = RecipeSettings(code="vasp", ecut=520, potcar_dir="/apps/vasp/potpaw_PBE.54",
                              potcars={"Na": "Na_pv"}, spin=True, task="relax", relax_cell=False)
    recipe = get_recipe("vasp")
    prepared = recipe.prepare(nacl(), settings, ["band_gap"], "/unused")
    incar = dict(line.split(" = ") for line in prepared.files["INCAR"].splitlines())
    assert incar["ENCUT"] == "520" and incar["ISMEAR"] == "-1" and incar["ISPIN"] == "2"
    assert incar["ISIF"] == "2" and incar["IBRION"] == "2" and incar["EDIFFG"] == "-0.05"
    assert incar["MAGMOM"] == "2*1.0"
    species = prepared.files["POSCAR"].splitlines()[5].split()
    assert species == ["Na", "Cl"]  # POTCARs concatenate in this order
    assert ("cat /apps/vasp/potpaw_PBE.54/Na_pv/POTCAR /apps/vasp/potpaw_PBE.54/Cl/POTCAR > POTCAR"
            in prepared.command)
    assert prepared.files["KPOINTS"].splitlines()[2] == "Gamma"
    with pytest.raises(ValueError, match="no VASP ISMEAR"):
        recipe.check(nacl(), RecipeSettings.model_validate(
            {**settings.model_dump(), "smearing": {"kind": "marzari-vanderbilt"}}), [])


# -- the parsers run inside job directories ------------------------------------------------------

@pytest.mark.parametrize(
    ("code", "output", "settings"),
    [
        ("qe", "qe_si_scf.out", {"pseudo_dir": "/p", "pseudopotentials": {"Si": "Si.UPF"}}),
        ("vasp", "vasp6_si_OUTCAR", {"potcar_dir": "/p"}),
    ],
)
def test_job_directory_parser_runs_standalone_and_writes_result_json(
    code: str, output: str, settings: dict, tmp_path: Path
) -> None:
    """The copied parser needs only the standard library: Debian's Python, without matloop, runs it."""
    if not Path(DEBIAN_PYTHON).exists():
        pytest.skip(f"{DEBIAN_PYTHON} is not here (it is on every Debian CI machine)")
    prepared = get_recipe(code).prepare(silicon(), RecipeSettings(code=code, **settings), ["band_gap"], "/unused")
    for name, text in prepared.files.items():
        (tmp_path / name).write_text(text)
    out_name = "pw.out" if code == "qe" else "OUTCAR"
    shutil.copy(SAMPLES / output, tmp_path / out_name)
    proc = subprocess.run([DEBIAN_PYTHON, "-I", "parse_output.py", out_name], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "ok" and result["band_gap"] > 0.5


def test_gap_from_bands_needs_levels_on_both_sides() -> None:
    assert gap_from_bands([[[1.0, 3.0], [1.5, 2.5]]], 2.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no levels on one side"):
        gap_from_bands([[[1.0, 1.5]]], 2.0)
