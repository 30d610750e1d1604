"""Named crash points, so tests can SIGKILL a real campaign process at an exact instant.

``MATLOOP_KILL_AT=dispatch.after_submit:3`` makes the process kill itself with
SIGKILL the third time it passes ``dispatch.after_submit``.  This is how the
resume tests prove the invariant "killed at any instant, resumed with nothing
submitted twice and nothing lost" at the nastiest instants (between a lab
accepting a job and the database recording it), deterministically instead of by
racing a timer.  ``MATLOOP_KILL_SIGNAL=INT`` sends SIGINT instead (a user's Ctrl-C at that
instant).  Unset (always, outside tests), a checkpoint costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

_passes: dict[str, int] = {}


def checkpoint(name: str) -> None:
    """Die here with SIGKILL (or ``MATLOOP_KILL_SIGNAL``) if ``MATLOOP_KILL_AT`` names this point (and pass count)."""
    spec = os.environ.get("MATLOOP_KILL_AT")
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(count or 1):
        os.kill(os.getpid(), signal.Signals[f"SIG{os.environ.get('MATLOOP_KILL_SIGNAL', 'KILL')}"])
