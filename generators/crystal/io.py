"""Reading seed and reference structures with errors that name the file and the site.

pymatgen's CIF parser warns and skips what it cannot read; a campaign must not
silently lose a seed, so every problem here becomes a :class:`CrystalInputError`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from pymatgen.core import Element, Structure
from pymatgen.io.cif import CifParser

from generators.base import resolve_path


class CrystalInputError(ValueError):
    """A structure file (or text) that cannot be used, with where and why."""


_SYMBOL_RE = re.compile(r"^([A-Z][a-z]?)")


def _site_symbols(parser: CifParser, source: str) -> None:
    """Check every ``_atom_site_type_symbol`` names a real element, naming the offending site."""
    for block in parser._cif.data.values():  # CifFile has no public iterator over blocks
        symbols = block.data.get("_atom_site_type_symbol") or block.data.get("_atom_site_label")
        labels = block.data.get("_atom_site_label") or symbols
        if symbols is None:
            raise CrystalInputError(f"{source}: block {block.header!r} has no atom sites (_atom_site_type_symbol)")
        for i, (symbol, label) in enumerate(zip(symbols, labels, strict=False)):
            m = _SYMBOL_RE.match(symbol.strip())
            if m is None or not Element.is_valid_symbol(m.group(1)):
                raise CrystalInputError(
                    f"{source}: site {i + 1} (label {label!r}) has unknown element {symbol!r}"
                )


def structure_from_cif_text(text: str, source: str = "<cif>") -> Structure:
    """Parse one CIF text into a Structure; ``source`` names it in errors (a path, or 'row 12 of x.csv')."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser = CifParser.from_str(text)
    except Exception as exc:  # pymatgen raises assorted types for broken CIF syntax
        raise CrystalInputError(f"{source}: not a readable CIF ({type(exc).__name__}: {exc})") from exc
    _site_symbols(parser, source)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            structures = parser.parse_structures(primitive=False)
    except Exception as exc:
        raise CrystalInputError(f"{source}: CIF could not be turned into a structure ({exc})") from exc
    if not structures:
        why = "; ".join(str(w.message) for w in caught) or "no structure found"
        raise CrystalInputError(f"{source}: CIF holds no usable structure ({why})")
    if len(structures) > 1:
        raise CrystalInputError(f"{source}: CIF holds {len(structures)} structures; give one per file")
    return structures[0]


def load_cif(path: str | Path) -> Structure:
    """Read one CIF file; errors name the file (and the site, for unknown elements)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CrystalInputError(f"{path}: cannot read ({exc.strerror})") from exc
    return structure_from_cif_text(text, source=str(path))


def seed_cif_paths(seed_cifs: list[str], base_dir: Path | None) -> list[Path]:
    """A crystal space's seed CIFs as paths: relative ones next to the campaign file (when it is known)."""
    return [resolve_path(p, base_dir) for p in seed_cifs]
