from sqlalchemy import text

from agent.store import Database


def test_both_backends_answer(db_url: str) -> None:
    db = Database(db_url)
    with db.reading() as s:
        assert s.execute(text("SELECT 1")).scalar() == 1
    db.dispose()
