"""What the typed component configs (generator, surrogate, acquisition, adapters) share: their error kind,
and how each reads the older ``{type, settings}`` shape.

Some checks run before pydantic picks a component's model by ``type`` (so that the message can say
what the choices are, or refuse a literal secret); raising :class:`ConfigFieldError` (not a bare
``ValueError``) lets the campaign-file reader report it at ``<component>.<field>`` with that line,
rather than at the component as a whole.
"""

from __future__ import annotations

from typing import Any


class ConfigFieldError(ValueError):
    """A component setting refused before validation; ``field`` names the key it is about."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownTypeError(ConfigFieldError):
    """A component's ``type`` that names nothing known (or code to import); the message says what to write."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "type")


def flatten_settings(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` (a component's mapping, a copy the caller owns) with an older ``settings: {...}`` written flat.

    Campaign files and stored specs from before the typed components said ``{type, settings: {...}}``; every
    component reads that shape the same way. A key given both inside ``settings`` and beside it is refused
    rather than one silently winning; a ``settings`` that is not a mapping is left for the model to refuse by name.
    """
    settings = value.pop("settings", None)
    if isinstance(settings, dict):
        clash = sorted(set(settings) & set(value))
        if clash:
            raise ValueError(f"{clash} given both in 'settings' and beside it; write each setting once")
        value.update(settings)
    elif settings is not None:
        value["settings"] = settings
    return value
