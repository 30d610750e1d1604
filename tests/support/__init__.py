"""Helpers the test suite shares: a throw-away PostgreSQL server, free ports."""
