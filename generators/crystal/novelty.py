"""Novelty: is a structure absent from a reference set of known crystals?

Reference sets can be large (thousands of CIFs) while a batch touches only a few
formulas, so CIFs are indexed by reduced formula and parsed only when a
candidate with that formula shows up.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

from generators.crystal.dedup import lookup_matcher
from generators.crystal.io import CrystalInputError, load_cif, structure_from_cif_text


class ReferenceSet:
    """Known structures, looked up by reduced formula then ``StructureMatcher``.

    The default matcher is the loose :func:`lookup_matcher`: reference crystals are
    usually DFT-relaxed (distorted) while candidates are ideal decorated prototypes.
    """

    def __init__(self, name: str, matcher: StructureMatcher | None = None) -> None:
        self.name = name
        self.matcher = matcher or lookup_matcher()
        self._pending: dict[str, list[tuple[str, str]]] = defaultdict(list)  # formula -> [(source, cif)]
        self._parsed: dict[str, list[tuple[str, Structure]]] = defaultdict(list)

    def __len__(self) -> int:
        return sum(map(len, self._pending.values())) + sum(map(len, self._parsed.values()))

    @property
    def formulas(self) -> set[str]:
        return set(self._pending) | set(self._parsed)

    def add_structure(self, source: str, structure: Structure) -> None:
        self._parsed[structure.composition.reduced_formula].append((source, structure))

    def add_cif(self, source: str, cif: str, formula: str | None = None) -> None:
        """Register a CIF text for lazy parsing; ``formula`` (any order) saves parsing it to index it."""
        if formula is None:
            structure = structure_from_cif_text(cif, source)
            self.add_structure(source, structure)
            return
        try:
            reduced = Composition(formula).reduced_formula
        except Exception as exc:
            raise CrystalInputError(f"{source}: formula {formula!r} is not readable ({exc})") from exc
        self._pending[reduced].append((source, cif))

    def _entries(self, formula: str) -> list[tuple[str, Structure]]:
        for source, cif in self._pending.pop(formula, []):
            self._parsed[formula].append((source, structure_from_cif_text(cif, source)))
        return self._parsed.get(formula, [])

    def match(self, structure: Structure) -> str | None:
        """The source (file, or 'file row N') of the reference crystal ``structure`` matches, if any."""
        for source, known in self._entries(structure.composition.reduced_formula):
            if self.matcher.fit(known, structure):
                return source
        return None

    def is_novel(self, structure: Structure) -> bool:
        return self.match(structure) is None

    @classmethod
    def from_csv(cls, path: str | Path, cif_column: str = "cif", formula_column: str | None = "formula") -> ReferenceSet:
        """A CSV with one CIF per row (e.g. the perov5 data); rows are named ``<file> row <n>`` in errors."""
        path = Path(path)
        ref = cls(name=path.stem)
        csv.field_size_limit(10**8)
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or cif_column not in reader.fieldnames:
                raise CrystalInputError(f"{path}: no column {cif_column!r} (columns: {reader.fieldnames})")
            for n, row in enumerate(reader, start=1):  # data rows, header not counted
                formula = row.get(formula_column) if formula_column else None
                ref.add_cif(f"{path} row {n}", row[cif_column], formula or None)
        return ref

    @classmethod
    def from_cifs(cls, paths: Iterable[str | Path], name: str = "cifs") -> ReferenceSet:
        ref = cls(name=name)
        for p in paths:
            ref.add_structure(str(p), load_cif(p))
        return ref
