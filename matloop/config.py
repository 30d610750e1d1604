"""What the typed component configs (generator, surrogate, acquisition, adapters) share: their error kind.

Some checks run before pydantic picks a component's model by ``type`` (so that the message can say
what the choices are, or refuse a literal secret); raising :class:`ConfigFieldError` (not a bare
``ValueError``) lets the campaign-file reader report it at ``<component>.<field>`` with that line,
rather than at the component as a whole.
"""

from __future__ import annotations


class ConfigFieldError(ValueError):
    """A component setting refused before validation; ``field`` names the key it is about."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownTypeError(ConfigFieldError):
    """A component's ``type`` that names nothing known (or code to import); the message says what to write."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "type")
