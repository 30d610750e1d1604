"""Fuzzing ``matloop validate``: every campaign file gets an answer, within 5 s and 500 MB, never a traceback.

Each file goes through the CLI's real ``validate`` command in a child forked from this (warmed-up)
interpreter: the imports and the first validation of every template (which load generator and
surrogate code) happen once here, so a child costs a fork and the validation itself, and the whole
test stays within a few minutes on two cores. The child answers to a temporary file through a
strict UTF-8 stream (a lone surrogate that reaches the printer is a crash, as on a real terminal),
runs under an address-space limit of 500 MB above this process's, and is killed if it runs 30 s of
wall clock. We assert on what the issue promises: exit 0 (valid) or 2 (invalid), no traceback, at
most 5 s of CPU time (CPU rather than wall clock, so a busy machine does not fail it) and at most
500 MB more resident memory than the parent it was forked from.

The corpus (``fuzz_corpus/``, written by ``make_fuzz_corpus.py``) holds the attacks of the issue and
seeded mutations of every template; hypothesis adds fresh byte- and line-level mutations each run.
"""

from __future__ import annotations

import io
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.spec import CampaignFileError, load_campaign
from cli import app
from cli.campaign_files import template_names, template_text

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
TEMPLATES = Path(__file__).resolve().parents[2] / "agent" / "templates"
CPU_LIMIT_S = 5.0
MEMORY_LIMIT = 500 * 2**20
WALL_KILL_S = 30  # a child still running after this is killed (and the file reported as running past the limit)
CRASHED = 70  # the exit code of a child in which validate raised instead of answering


@dataclass(frozen=True)
class Outcome:
    """How one forked ``matloop validate`` ended."""

    code: int | None  # exit status; None when a signal ended it
    signal: int | None
    cpu_s: float
    extra_rss: int  # bytes of resident memory above the parent's at the fork
    output: str

    def problems(self) -> list[str]:
        found = []
        if self.signal is not None:
            found.append(f"killed by signal {self.signal}" + (" (ran past the wall-clock limit)"
                                                              if self.signal == signal.SIGALRM else ""))
        elif self.code not in (0, 2):
            found.append(f"exit code {self.code}")
        if "Traceback" in self.output:
            found.append("printed a traceback")
        if self.cpu_s > CPU_LIMIT_S:
            found.append(f"took {self.cpu_s:.1f} s of CPU time")
        if self.extra_rss > MEMORY_LIMIT:
            found.append(f"grew by {self.extra_rss / 2**20:.0f} MB")
        return found


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def validate_forked(path: Path) -> Outcome:
    """``matloop validate PATH`` in a forked child, with limits on memory and time; its outcome."""
    return validate_many([path])[path]


def validate_many(paths: list[Path], parallel: int = 2) -> dict[Path, Outcome]:
    """:func:`validate_forked` for each path, ``parallel`` children at a time (the machines have two cores or more).

    Children are reaped by their own pid (never ``wait(-1)``, which could steal another fixture's subprocess).
    """
    parent_rss = _status_kb("VmRSS") * 1024
    address_limit = _status_kb("VmSize") * 1024 + MEMORY_LIMIT
    waiting = list(reversed(paths))
    running: dict[int, tuple[Path, IO[bytes]]] = {}
    outcomes: dict[Path, Outcome] = {}
    while waiting or running:
        while waiting and len(running) < parallel:
            path = waiting.pop()
            out = tempfile.TemporaryFile()
            running[_start(path, address_limit, out)] = (path, out)
        reaped_any = False
        for pid in list(running):
            reaped, status, usage = os.wait4(pid, os.WNOHANG)
            if reaped == 0:
                continue
            reaped_any = True
            path, out = running.pop(pid)
            with out:
                out.seek(0)
                output = out.read().decode("utf-8", "replace")
            outcomes[path] = Outcome(
                code=os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
                signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                cpu_s=usage.ru_utime + usage.ru_stime,
                extra_rss=max(0, usage.ru_maxrss * 1024 - parent_rss),
                output=output,
            )
        if not reaped_any:
            time.sleep(0.002)
    return outcomes


def _start(path: Path, address_limit: int, out: IO[bytes]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = CRASHED
        try:
            code = _child(path, out.fileno(), address_limit)
        finally:
            os._exit(code)
    return pid


def _child(path: Path, fd: int, address_limit: int) -> int:
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    stream = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="strict",
                              line_buffering=True)
    sys.stdout = sys.stderr = stream
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # pytest-timeout may have its own handler
    signal.alarm(WALL_KILL_S)
    resource.setrlimit(resource.RLIMIT_AS, (address_limit, address_limit))
    try:
        app(args=["validate", str(path)], prog_name="matloop", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # what the fuzz is looking for: print it as the user would see it
        traceback.print_exc()
        code = CRASHED
    stream.flush()
    return code


@pytest.fixture(scope="module")
def warmed() -> None:
    """Import and run everything ``validate`` uses once, so that each forked child starts warm."""
    for name in template_names():
        load_campaign(TEMPLATES / f"{name}.yaml")
    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder) / "bad.yaml"
        bad.write_text("name: [\n")
        with pytest.raises(CampaignFileError):
            load_campaign(bad)
        outcome = validate_forked(TEMPLATES / "oer.yaml")
    assert outcome.code == 0 and not outcome.problems(), outcome.output


def corpus_files() -> list[Path]:
    return sorted(CORPUS.iterdir())


def test_the_corpus_is_large_and_small() -> None:
    files = corpus_files()
    assert len(files) >= 300
    assert max(p.stat().st_size for p in files) < 1_200_000
    assert sum(p.stat().st_size for p in files) < 4_000_000


def test_every_corpus_file_gets_an_answer_within_the_limits(warmed: None) -> None:
    failures: dict[str, list[str]] = {}
    codes: dict[int | None, int] = {}
    started = time.monotonic()
    for path, outcome in sorted(validate_many(corpus_files()).items()):
        codes[outcome.code] = codes.get(outcome.code, 0) + 1
        if outcome.problems():
            failures[path.name] = outcome.problems() + [outcome.output[-2000:]]
    assert not failures, "\n".join(f"{name}: {found}" for name, found in failures.items())
    assert codes.get(2, 0) > len(corpus_files()) // 2, codes  # most are broken, and refused as such
    print(f"{len(corpus_files())} files in {time.monotonic() - started:.0f} s: exit codes {codes}")


def test_valid_corpus_files_are_valid_and_broken_ones_refused(warmed: None) -> None:
    """Spot checks that the corpus means what its names say (the fuzz itself only asks for an answer)."""
    expected = {"oer-utf8-bom": 0, "oer-alias-bomb": 2, "oer-recursive-alias": 2, "oer-deep-maps": 2,
                "oer-dup-top": 2, "oer-utf16-bom": 2, "oer-surrogate-raw": 2, "oer-wallclock0": 2,
                "oer-cost-inf": 2, "options-200k": 2, "options-12k": 2, "options-9k": 0}
    for suffix, code in expected.items():
        (path,) = [p for p in corpus_files() if p.stem.split("-", 1)[1] == suffix]
        outcome = validate_forked(path)
        assert outcome.code == code, (path.name, outcome.output[-2000:])


_JUNK = st.one_of(
    st.binary(min_size=1, max_size=8),
    st.sampled_from([b"&a [*a]", b"*a", b"{", b"[[[[", b"\t", b"\xff", b"\x00", b"\xed\xa0\x80", b": :", b"- ",
                     b"!!python/object:os.system", b".inf", b"1.0e+999", b"99999999999999999999", b"\"\\ud800\"",
                     b"[bold]", b"[/]", b"\x1b[2J", b"<<: *a", b"---\n", b"? ", b"%YAML 1.1\n", b"\n  ", b"'"]),
)


@st.composite
def mutated_templates(draw: st.DrawFn) -> bytes:
    """A template with a few random edits: bytes inserted, replaced or deleted, lines dropped or repeated."""
    data = bytearray(template_text(draw(st.sampled_from(template_names()))).encode())
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "replace", "delete", "lines"]))
        if op == "insert":
            data[at:at] = draw(_JUNK)
        elif op == "replace":
            junk = draw(_JUNK)
            data[at:at + len(junk)] = junk
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        else:
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [] if draw(st.booleans()) else [lines[i]] * draw(st.integers(2, 4))
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=mutated_templates())
def test_mutated_templates_get_an_answer_within_the_limits(warmed: None, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "mutated.yaml"
    path.write_bytes(data)
    outcome = validate_forked(path)
    assert not outcome.problems(), (outcome.problems(), outcome.output[-2000:])
