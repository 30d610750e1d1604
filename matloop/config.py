"""What the typed component configs (generator, surrogate, acquisition, adapters) share: their one error kind.

A component's ``type`` is checked before pydantic picks its model, so that the message can say what the
choices are; raising :class:`UnknownTypeError` (not a bare ``ValueError``) lets the campaign-file reader
report it at ``<component>.type`` with that line, rather than at the component as a whole.
"""

from __future__ import annotations


class UnknownTypeError(ValueError):
    """A component's ``type`` that names nothing known (or code to import); the message says what to write."""
