"""Run by ``test_ledger_kill.py`` as a separate process: run (or resume) a campaign with the plain loop driver.

``MATLOOP_KILL_AT`` (``agent.loop.faults``) makes it die by SIGKILL at a named instant of dispatch. Usage:
``python tests/loop/ledger_run.py <campaign.yaml> <database url>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.adapters import open_adapters  # noqa: E402
from agent.loop import Backoff, LoopContext, run_campaign  # noqa: E402
from agent.spec import load_campaign  # noqa: E402
from agent.store import Database  # noqa: E402
from agent.store.campaigns import register_campaign  # noqa: E402


def main() -> None:
    spec = load_campaign(Path(sys.argv[1]))
    db = Database(sys.argv[2])
    with db.transaction() as session:
        campaign_id = register_campaign(session, spec).id
    with open_adapters(spec) as adapters:
        ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters=adapters,
                          backoff=Backoff(initial=0.02, maximum=0.2))
        outcome = run_campaign(ctx)
    print(f"{outcome.status}: {outcome.reason}", flush=True)


if __name__ == "__main__":
    main()
