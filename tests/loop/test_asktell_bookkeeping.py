"""What an ask costs besides the model: its commits, the temporary database's flush, the parsed pool's checks.

``benchmarks/ask_speed.py``'s quick test pins the picks of the campaign-default asks; these pin the structure
that made the bookkeeping cheap, so that it does not creep back: one commit per step that writes, no disk flush
for a database removed at ``close``, and a parsed pool that proposes (and ``generate`` keeps) exactly what the
plain pool would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, select, text

from agent import Recommender
from agent.asktell import ParsedPool
from agent.loop.generate import generate
from agent.loop.iteration import open_iteration
from agent.store.models import IterationRecord, PoolRecord
from generators.pool import FramePool
from tests.loop.test_asktell import _grid_pool, _grid_spec


def _commits(rec: Recommender) -> list[int]:
    """A list that grows by one at every commit on the recommender's database."""
    seen: list[int] = []
    event.listen(rec.db.engine, "commit", lambda _conn: seen.append(1))
    return seen


def test_a_kept_ask_commits_once_per_writing_step() -> None:
    pool = _grid_pool()
    with Recommender(_grid_spec(), pool[["a", "b", "kind"]]) as rec:
        first = rec.recommend()
        rec.add_measurements(pool.loc[first.index])
        commits = _commits(rec)
        second = rec.recommend(2)
        # the iteration (the last one completed, the next opened), the fit, the pool's funnel, the batch, the
        # approval, the jobs with their charges, and their external ids with the batch marked dispatched
        assert len(commits) == 7, len(commits)
        rec.add_measurements(pool.loc[second.index])
        del commits[:]
        rec.recommend(2)
        assert len(commits) == 7, len(commits)


def test_the_temporary_database_skips_the_disk_flush_and_a_named_one_keeps_it(tmp_path: Path) -> None:
    pool = _grid_pool()[["a", "b", "kind"]]

    def synchronous(rec: Recommender) -> int:
        with rec.db.engine.connect() as conn:
            return int(conn.execute(text("PRAGMA synchronous")).scalar_one())

    with Recommender(_grid_spec(), pool) as scratch:
        assert synchronous(scratch) == 0  # OFF: the file lives in a temporary folder that close() removes
    with Recommender(_grid_spec(), pool, database=f"sqlite:///{tmp_path / 'kept.sqlite'}") as kept:
        assert synchronous(kept) == 2  # FULL, SQLite's default: the caller keeps this file


def test_a_parsed_pool_proposes_and_generate_keeps_what_the_plain_pool_does() -> None:
    frame = _grid_pool()[["a", "b", "kind"]]
    frame = frame.iloc[list(range(0, 40)) + [3, 7]]  # two repeated rows: dropped once each, as the plain pool does
    frame.loc["out", :] = [2.0, 0.5, "p"]  # outside the space: refused by both
    with Recommender(_grid_spec(), frame.iloc[:5]) as rec:
        iteration = open_iteration(rec.ctx)
        rec.add_measurements(frame.iloc[[1, 4]].assign(y=[0.5, 0.7]))  # known candidates are left out
        pools: dict[str, Any] = {}
        stats: dict[str, Any] = {}
        for name, generator in (("plain", FramePool(frame)), ("parsed", ParsedPool(frame))):
            pools[name] = generate(rec.ctx, iteration.id, generator=generator)
            assert len(generator.rejected) == 1  # the row outside the space
            with rec.db.transaction() as session:  # the funnel as stored; then the iteration generates anew
                record = session.scalar(select(PoolRecord).where(PoolRecord.iteration_id == iteration.id))
                assert record is not None
                stats[name] = record.stats
                session.delete(record)
                session.get(IterationRecord, iteration.id).step = "fitted"  # type: ignore[union-attr]
    assert [c.fingerprint for c in pools["parsed"]] == [c.fingerprint for c in pools["plain"]]
    assert pools["parsed"] == pools["plain"] and len(pools["plain"]) == 38
    assert stats["parsed"] == stats["plain"] and stats["plain"]["novel"] == 38
