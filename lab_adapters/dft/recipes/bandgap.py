"""Band gap from eigenvalues and a Fermi level (standard library only: copied into QE/VASP job directories)."""

from __future__ import annotations


def gap_from_bands(channels: list[list[list[float]]], fermi: float) -> float:
    """Fundamental gap (eV) from eigenvalues ``channels[spin][kpoint][band]`` and the Fermi level.

    A band that has eigenvalues on both sides of the Fermi level makes the system a
    metal (gap 0); otherwise the gap is the lowest level above the Fermi level minus
    the highest one below, over all k-points and spin channels.
    """
    below: list[float] = []
    above: list[float] = []
    for kpoints in channels:
        nbands = min((len(k) for k in kpoints), default=0)
        for n in range(nbands):
            values = [k[n] for k in kpoints]
            if min(values) < fermi < max(values):
                return 0.0
        for k in kpoints:
            below.extend(e for e in k if e <= fermi)
            above.extend(e for e in k if e > fermi)
    if not below or not above:
        raise ValueError("the band listing has no levels on one side of the Fermi level (add empty bands)")
    return max(0.0, min(above) - max(below))
