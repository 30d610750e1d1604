"""`matloop simlab serve` refuses bad options in one sentence, never with a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def serve(*args: str):
    return runner.invoke(app, ["simlab", "serve", *args])


def assert_one_sentence(result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, result.output


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_out_of_range_is_one_sentence(port: str) -> None:
    assert_one_sentence(serve("--port", port), "Invalid value for '--port'")


def test_a_port_in_use_is_one_sentence() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = serve("--port", str(port))
    assert_one_sentence(result, f"error: cannot listen on 127.0.0.1:{port}: address already in use")


@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "not-a-database"])
def test_state_in_an_unwritable_or_unusable_place_is_one_sentence(tmp_path: Path, where: str) -> None:
    (tmp_path / "plain-file").write_text("not a folder")
    (tmp_path / "garbage.sqlite").write_text("not an SQLite file " * 100)
    state, reason = {
        "under-a-file": (tmp_path / "plain-file" / "state.sqlite", "exists"),
        "a-directory": (tmp_path, "unable to open database file"),
        "not-a-database": (tmp_path / "garbage.sqlite", "file is not a database"),
    }[where]
    result = serve("--port", "0", "--state", str(state))
    assert_one_sentence(result, f"error: cannot keep the lab's state in {state}:", reason)
    assert "simlab listening" not in result.output


def test_a_token_that_cannot_travel_in_a_header_is_refused() -> None:
    assert_one_sentence(serve("--port", "0", "--token", "tök en"), "visible ASCII characters")


def test_max_body_bytes_must_be_positive() -> None:
    assert_one_sentence(serve("--max-body-bytes", "0"), "Invalid value for '--max-body-bytes'")
