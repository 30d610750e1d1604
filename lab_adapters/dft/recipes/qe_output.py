"""Quantum ESPRESSO ``pw.x`` output parser (standard library only).

Copied into each QE job directory as ``parse_output.py`` (with ``bandgap.py``) and
run there after ``pw.x``: ``python3 parse_output.py pw.out`` writes ``result.json``
(schema in ``lab_adapters/dft/recipes/base.py``).  The adapters import the same
functions, so the parser is tested without QE.

What it reads, as pw.x prints it (QE 6-7):
``!    total energy              =     -15.79441848 Ry`` (converged SCF energies; the last wins),
``convergence NOT achieved after 100 iterations: stopping``,
``          k = 0.0000 0.0000 0.0000 (   749 PWs)   bands (ev):`` followed by eigenvalues,
``------ SPIN UP ------------`` / ``------ SPIN DOWN ----------`` around the per-spin listings,
``the Fermi energy is     6.6094 ev`` or
``highest occupied, lowest unoccupied level (ev):     6.2549    6.8078``,
``number of atoms/cell      =            2``, ``bfgs converged``,
``The maximum number of steps has been reached.``, ``Maximum CPU time exceeded`` and ``JOB DONE.``.
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

RY_TO_EV = 13.605693122994
_FLOAT = re.compile(r"-?\d+\.\d+")


def _bands(lines: list[str]) -> list[list[list[float]]]:
    """Eigenvalues of the last band listing: ``[spin][kpoint][band]``."""
    start = None
    for i, line in enumerate(lines):
        if "End of self-consistent calculation" in line or "End of band structure calculation" in line:
            start = i
    if start is None:
        return []
    channels: list[list[list[float]]] = [[]]
    current: list[float] | None = None
    for line in lines[start + 1 :]:
        text = line.strip()
        if text.startswith("------ SPIN DOWN"):
            channels.append([])
            current = None
            continue
        if text.startswith("------ SPIN UP"):
            continue
        if text.startswith("k =") and "bands (ev)" in text:
            current = []
            channels[-1].append(current)
            continue
        if ("Fermi energ" in text or "highest occupied" in text or text.startswith("!")
                or text.startswith("total energy") or "occupation numbers" in text):
            break
        if current is not None and text:
            current.extend(float(x) for x in _FLOAT.findall(line))
    return [c for c in channels if c]


def parse_pw_output(text: str) -> dict:
    """Energy (eV), band gap (eV), atom count and failure kind from pw.x output text."""
    lines = text.splitlines()
    result: dict = {"status": "ok", "failure": None, "message": "", "energy": None, "band_gap": None,
                    "natoms": None}
    energies = [float(m.group(1)) for m in re.finditer(r"^!\s+total energy\s+=\s+(-?\d+\.\d+)\s+Ry", text, re.M)]
    if m := re.search(r"number of atoms/cell\s+=\s+(\d+)", text):
        result["natoms"] = int(m.group(1))
    if m := re.search(r"convergence NOT achieved after\s+(\d+)\s+iterations", text):
        return {**result, "status": "failed", "failure": "scf_not_converged",
                "message": f"pw.x: SCF did not converge after {m.group(1)} iterations"}
    if "Maximum CPU time exceeded" in text:
        return {**result, "status": "failed", "failure": "timeout", "message": "pw.x: maximum CPU time exceeded"}
    if "The maximum number of steps has been reached" in text:
        return {**result, "status": "failed", "failure": "relax_not_converged",
                "message": "pw.x: relaxation reached the maximum number of ionic steps"}
    if not energies or "JOB DONE." not in text:
        return {**result, "status": "failed", "failure": "missing_output",
                "message": "pw.x output has no converged total energy ('!' line) or no 'JOB DONE.'"}
    result["energy"] = energies[-1] * RY_TO_EV
    homo_lumo = re.findall(r"highest occupied, lowest unoccupied level \(ev\):\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)", text)
    fermi = re.findall(r"the Fermi energy is\s+(-?\d+\.\d+)\s+ev", text)
    if homo_lumo:
        homo, lumo = map(float, homo_lumo[-1])
        result["band_gap"] = max(0.0, lumo - homo)
    elif fermi:
        fermi_up_down = re.findall(r"the spin up/dw Fermi energies are\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)", text)
        level = float(fermi[-1]) if not fermi_up_down else max(map(float, fermi_up_down[-1]))
        channels = _bands(lines)
        if channels:
            result["band_gap"] = gap_from_bands(channels, level)
    return result


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "pw.out"
    try:
        with open(path, errors="replace") as fh:
            result = parse_pw_output(fh.read())
    except FileNotFoundError:
        result = {"status": "failed", "failure": "missing_output", "message": f"{path} was not written"}
    result["code_version"] = "quantum-espresso pw.x"
    with open("result.json.tmp", "w") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
    os.replace("result.json.tmp", "result.json")
    return 0 if result["status"] == "ok" else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
