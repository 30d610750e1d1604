"""Campaign specs never hold a lab token (``token_env`` names a variable): tests put a lab's token in one."""

from __future__ import annotations

import hashlib
import os


def token_env(token: str) -> str:
    """The name of an environment variable now holding ``token`` (one per token, so labs never share one).

    Set in this process's environment, so a flow run or CLI the test starts afterwards inherits it.
    """
    name = "MATLOOP_TEST_TOKEN_" + hashlib.sha256(token.encode()).hexdigest()[:12].upper()
    os.environ[name] = token
    return name
