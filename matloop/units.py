"""Units of measured values: convert what a lab reports into the units the campaign declared, or say why not.

A lab's unit string is untrusted text.  pint parses it with its own tokenizer (it never evaluates Python), but
its errors are many and varied (undefined units, syntax errors, a division by zero in ``V/0``, an overflow in
``V**1e9``), so every one of them is caught here and turned into one sentence; strings longer than
:data:`MAX_UNITS_LENGTH` are refused before pint sees them (they would not fit the store's column either).

Equal strings need no conversion and no parsing, so a unit pint does not know (``px``) still works as long as the
lab and the campaign spell it the same way.  ``atom`` is defined as its own dimension, so the DFT adapter's
``eV/atom`` converts to ``meV/atom`` but never to ``eV``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

#: Longer unit strings are refused unparsed (the measurement table stores at most 50 characters).
MAX_UNITS_LENGTH = 50


class UnitsError(ValueError):
    """Units that cannot be read, or that cannot be converted into the units asked for; the message says why."""


@functools.cache
def _registry() -> Any:
    """One pint registry per process (building it reads pint's definitions: about half a second)."""
    import pint

    registry = pint.UnitRegistry(cache_folder=None, autoconvert_offset_to_baseunit=True)
    registry.define("atom = [atom]")  # per-atom energies (eV/atom) keep their own dimension
    return registry


def _dimensionality_error() -> type[Exception]:
    from pint.errors import DimensionalityError

    return DimensionalityError


def parse_units(text: str) -> Any:
    """pint's units for ``text``; :class:`UnitsError` with the reason when they cannot be read."""
    if not isinstance(text, str):
        raise UnitsError(f"units must be text, not {type(text).__name__}")
    if len(text) > MAX_UNITS_LENGTH:
        raise UnitsError(f"units of {len(text)} characters are longer than the {MAX_UNITS_LENGTH} allowed")
    try:
        return _registry().parse_units(text)
    except Exception as exc:  # noqa: BLE001 - pint raises many kinds; each means "not units we can read"
        raise UnitsError(f"{text!r} are not units we can read ({type(exc).__name__})") from exc


def convert(value: float, std: float | None, source: str | None, target: str | None) -> tuple[float, float | None]:
    """``value ± std`` given in ``source`` units, expressed in ``target`` units.

    No target (the campaign declared none) or no source (the lab said nothing) keeps the value as it is: a
    lab that reports bare numbers is taken to speak the campaign's units, as every adapter did before units
    were checked.  The std is converted as a difference (``|f(v + s) - f(v)|``), which is right for offset
    units such as degrees Celsius too.  Raises :class:`UnitsError` when the units are unreadable or measure
    different things (mV into eV), or when the converted value is not finite.
    """
    if not target or source is None or source == target:
        return value, std
    source_units, target_units = parse_units(source), parse_units(target)
    registry = _registry()
    try:
        converted = float(registry.Quantity(value, source_units).to(target_units).magnitude)
        converted_std = None
        if std is not None:
            shifted = float(registry.Quantity(value + std, source_units).to(target_units).magnitude)
            converted_std = abs(shifted - converted)
    except Exception as exc:  # noqa: BLE001 - DimensionalityError, OverflowError, ...
        if isinstance(exc, _dimensionality_error()):
            raise UnitsError(f"{source!r} cannot be converted to {target!r}: they measure different things") from exc
        raise UnitsError(f"{source!r} cannot be converted to {target!r} ({type(exc).__name__})") from exc
    if not math.isfinite(converted) or (converted_std is not None and not math.isfinite(converted_std)):
        raise UnitsError(f"{value!r} {source} is not a finite number in {target}")
    return converted, converted_std
