"""How much of a lab's raw answer a measurement keeps.

An executor's ``raw`` payload (the lab's record, a DFT parser's extras) is untrusted and unbounded: a lab that
attaches a spectrum, an image or garbage of a gigabyte would otherwise be copied into every measurement row of
the job (one per property), bloat the database and every history export, and on PostgreSQL may exceed what one
JSONB value may hold, failing the sync step on every resume. The value itself is checked elsewhere
(:func:`agent.loop.sync.usable_value`); the raw payload is provenance, so an oversized one is replaced by a note
that says what was dropped, and the measurement is still stored.
"""

from __future__ import annotations

import json
from typing import Any

#: Raw payloads whose JSON text is longer than this are not stored (the note says how long they were).
MAX_RAW_BYTES = 256 * 1024

#: How many of an oversized payload's top-level keys the note names, and how long each name may be.
_KEYS_KEPT, _KEY_LENGTH = 50, 100


def bounded_raw(raw: dict[str, Any], max_bytes: int = MAX_RAW_BYTES) -> dict[str, Any]:
    """``raw`` itself when its JSON fits in ``max_bytes``, else a small note naming its size and keys."""
    try:
        size = len(json.dumps(raw, default=str, allow_nan=True).encode())
    except (TypeError, ValueError, RecursionError):  # cyclic or nested beyond reading: not worth keeping
        return {"omitted": "the raw payload could not be written as JSON"}
    if size <= max_bytes:
        return raw
    keys = [str(k)[:_KEY_LENGTH] for k in list(raw)[:_KEYS_KEPT]]
    return {
        "omitted": f"the raw payload was {size:,} bytes of JSON, more than the {max_bytes:,} a measurement keeps",
        "keys": keys,
    }
