"""Crystal identity: a cheap key (reduced formula + space group) refined by ``StructureMatcher``.

Comparing every pair of structures with ``StructureMatcher`` is quadratic and
slow; two structures with different reduced formulas or space groups can never
match, so we only compare within a (formula, space group) group.  The first
structure of a group gets the plain key as its fingerprint; a genuinely
different structure landing in the same group (a polymorph with the same space
group) gets ``key#2``, ``key#3`` and so on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

FINGERPRINT_PREFIX = "structure:"


def space_group_number(structure: Structure, symprec: float = 0.1) -> int:
    try:
        return int(SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number())
    except Exception:  # spglib gives up on badly distorted cells: P1 is the honest answer
        return 1


def coarse_key(structure: Structure, symprec: float = 0.1) -> str:
    """``structure:<reduced formula>:<space group number>`` — the group a structure belongs to."""
    formula = structure.composition.reduced_formula
    return f"{FINGERPRINT_PREFIX}{formula}:{space_group_number(structure, symprec)}"


def group_of(fingerprint: str) -> str:
    """The coarse key of a (possibly refined) fingerprint."""
    return fingerprint.split("#", 1)[0]


def default_matcher() -> StructureMatcher:
    """Tolerant to supercells, site order and volume (rescaled or relaxed copies are the same crystal)."""
    return StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5, primitive_cell=True, scale=True, attempt_supercell=True)


def lookup_matcher() -> StructureMatcher:
    """Looser, for matching an ideal decorated prototype to its DFT-relaxed (distorted) counterpart."""
    return StructureMatcher(ltol=0.3, stol=0.6, angle_tol=10, primitive_cell=True, scale=True, attempt_supercell=True)


@dataclass
class StructureRegistry:
    """Every structure a campaign (or a reference set) knows, grouped by coarse key.

    A fingerprint known without its structure occupies its whole group: anything
    landing there counts as already seen (conservative — never propose twice).
    """

    matcher: StructureMatcher = field(default_factory=default_matcher)
    symprec: float = 0.1
    _groups: dict[str, list[tuple[str, Structure | None]]] = field(default_factory=dict)

    @classmethod
    def from_known(
        cls, fingerprints: Iterable[str] = (), structures: Mapping[str, dict | Structure] | None = None, **kwargs
    ) -> StructureRegistry:
        reg = cls(**kwargs)
        structures = structures or {}
        for fp in fingerprints:
            if fp.startswith(FINGERPRINT_PREFIX):
                s = structures.get(fp)
                reg.add(fp, Structure.from_dict(s) if isinstance(s, dict) else s)
        return reg

    def add(self, fingerprint: str, structure: Structure | None) -> None:
        self._groups.setdefault(group_of(fingerprint), []).append((fingerprint, structure))

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups.values())

    def find(self, structure: Structure, key: str | None = None) -> str | None:
        """The fingerprint of the known structure that ``structure`` matches, if any."""
        key = key or coarse_key(structure, self.symprec)
        for fp, known in self._groups.get(key, []):
            if known is None or self.matcher.fit(known, structure):
                return fp
        return None

    def identify(self, structure: Structure, key: str | None = None) -> tuple[str, bool]:
        """``(fingerprint, already_known)``; a new structure is registered under a fresh fingerprint."""
        key = key or coarse_key(structure, self.symprec)
        found = self.find(structure, key)
        if found is not None:
            return found, True
        group = self._groups.get(key, [])
        fp = key if not group else f"{key}#{len(group) + 1}"
        self.add(fp, structure)
        return fp, False


@dataclass(frozen=True)
class DedupOutcome:
    """Which structures of a batch are new, and what each duplicate duplicates."""

    unique: list[int]
    fingerprints: list[str]  # refined fingerprint of every input, duplicates included
    duplicate_of: dict[int, str]  # index -> fingerprint it repeats (earlier in batch or already seen)


def deduplicate(
    structures: Sequence[Structure], registry: StructureRegistry, keys: Sequence[str | None] | None = None
) -> DedupOutcome:
    """Drop duplicates within the batch and against ``registry`` (which learns the new ones)."""
    unique: list[int] = []
    fps: list[str] = []
    dupes: dict[int, str] = {}
    for i, s in enumerate(structures):
        fp, known = registry.identify(s, keys[i] if keys else None)
        fps.append(fp)
        if known:
            dupes[i] = fp
        else:
            unique.append(i)
    return DedupOutcome(unique=unique, fingerprints=fps, duplicate_of=dupes)
