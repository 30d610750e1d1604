"""VASP ``OUTCAR`` parser (standard library only).

Copied into each VASP job directory as ``parse_output.py`` (with ``bandgap.py``) and
run there after VASP: ``python3 parse_output.py OUTCAR`` writes ``result.json``.

What it reads, as VASP 5.4/6.x prints it:
``   NELM   =     60;   NELMIN=  2; NELMDL= -5     # of ELM steps``,
``   number of ions     NIONS =      2``,
``--------------------------------------- Iteration    1(  12)  ---------------------------------------``
(ionic step, electronic step), ``  energy  without entropy=  -10.84  energy(sigma->0) =  -10.84``,
`` E-fermi :   5.8723     XC(G=0): ...``, the eigenvalue listing that follows it
(`` spin component 1``, `` k-point     1 :  0.0 0.0 0.0``, `` band No.  band energies     occupation``),
``aborting loop EDIFF was not reached (unconverged)`` (VASP 6),
``reached required accuracy - stopping structural energy minimisation`` and
`` General timing and accounting informations for this job:`` (normal end).
"""

from __future__ import annotations

import json
import os
import re
import sys

try:
    from lab_adapters.dft.recipes.bandgap import gap_from_bands
except ImportError:  # inside a job directory, next to bandgap.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bandgap import gap_from_bands  # type: ignore[no-redef]


def _bands_after(lines: list[str], start: int) -> list[list[list[float]]]:
    channels: list[list[list[float]]] = []
    current: list[float] | None = None
    for line in lines[start + 1 :]:
        text = line.strip()
        if text.startswith("spin component"):
            channels.append([])
            current = None
        elif text.startswith("k-point") and ":" in text:
            if not channels:
                channels.append([])
            current = []
            channels[-1].append(current)
        elif text.startswith("band No."):
            continue
        elif current is not None and re.match(r"^\d+\s+-?\d+\.\d+\s+-?\d+\.\d+$", text):
            current.append(float(text.split()[1]))
        elif current is not None and text.startswith("----"):
            break
        elif current is not None and text and not text[0].isdigit():
            break
    return [c for c in channels if c]


def parse_outcar(text: str, incar_nsw: int | None = None) -> dict:
    """Energy (eV), band gap (eV), atom count and failure kind from OUTCAR text."""
    lines = text.splitlines()
    result: dict = {"status": "ok", "failure": None, "message": "", "energy": None, "band_gap": None,
                    "natoms": None}
    if m := re.search(r"NIONS\s*=\s*(\d+)", text):
        result["natoms"] = int(m.group(1))
    nelm = int(m.group(1)) if (m := re.search(r"NELM\s*=\s*(\d+)", text)) else None
    steps = [(int(a), int(b)) for a, b in re.findall(r"Iteration\s+(\d+)\(\s*(\d+)\)", text)]
    energies = [float(x) for x in re.findall(r"energy\(sigma->0\)\s*=\s*(-?\d+\.\d+)", text)]
    finished = "General timing and accounting informations for this job" in text
    unconverged = "EDIFF was not reached (unconverged)" in text
    if steps and nelm is not None and not unconverged:
        last_ionic = steps[-1][0]
        electronic = max(b for a, b in steps if a == last_ionic)
        unconverged = electronic >= nelm
    if unconverged:
        return {**result, "status": "failed", "failure": "scf_not_converged",
                "message": f"VASP: electronic SCF did not converge within NELM={nelm} steps"}
    if not energies or not finished:
        return {**result, "status": "failed", "failure": "missing_output",
                "message": "OUTCAR has no energy(sigma->0) or did not reach the final timing section"}
    if incar_nsw and "reached required accuracy" not in text:
        return {**result, "status": "failed", "failure": "relax_not_converged",
                "message": f"VASP: relaxation did not reach EDIFFG within NSW={incar_nsw} steps"}
    result["energy"] = energies[-1]
    fermi_lines = [i for i, line in enumerate(lines) if line.strip().startswith("E-fermi")]
    if fermi_lines:
        i = fermi_lines[-1]
        fermi = float(re.findall(r"-?\d+\.\d+", lines[i])[0])
        channels = _bands_after(lines, i)
        if channels:
            result["band_gap"] = gap_from_bands(channels, fermi)
    return result


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "OUTCAR"
    nsw = int(argv[2]) if len(argv) > 2 else None
    try:
        with open(path, errors="replace") as fh:
            result = parse_outcar(fh.read(), incar_nsw=nsw)
    except FileNotFoundError:
        result = {"status": "failed", "failure": "missing_output", "message": f"{path} was not written"}
    result["code_version"] = "vasp"
    with open("result.json.tmp", "w") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
    os.replace("result.json.tmp", "result.json")
    return 0 if result["status"] == "ok" else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
