"""Reading campaign files: YAML → validated :class:`Campaign`, with errors that name the field and line."""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.spec.campaign import Campaign
from agent.spec.safe_yaml import YamlRefused, load_yaml
from matloop.config import ConfigFieldError

#: The most a campaign file may hold. A real one is a few kilobytes; the limit keeps ``validate /dev/zero``
#: or a mistaken data file from being read into memory whole.
MAX_BYTES = 1_000_000

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a campaign file: where (field path, line) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path or '<file>'}: {self.message}"


class CampaignFileError(ValueError):
    """A campaign file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[SpecProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is not a valid campaign ({len(problems)} problem(s)):\n{lines}")


def _clean_loc(loc: Loc) -> Loc:
    """Drop pydantic's union-branch tags (e.g. 'parametric', 'continuous') that are not YAML keys."""
    return tuple(part for part in loc if not (isinstance(part, str) and part.startswith("function-")))


def _problems_from(err: ValidationError, lines: dict[Loc, int], data: Any) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    for e in err.errors():
        loc = _strip_tags(_clean_loc(tuple(e["loc"])), data)
        error = (e.get("ctx") or {}).get("error")
        if isinstance(error, ConfigFieldError):
            loc += (error.field,)  # a component setting refused before validation (its type, a literal token)
        line = _line_of(loc, lines)
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key (not part of the campaign format; check its spelling)"
        problems.append(SpecProblem(path=_format_loc(loc), message=message, line=line))
    return problems


def _strip_tags(loc: Loc, data: Any) -> Loc:
    """Remove discriminator tags pydantic inserts (``space.parametric.parameters``)."""
    out: list[str | int] = []
    node = data
    tagged: Any = None  # the mapping whose union tag was just skipped
    for part in loc:
        if isinstance(node, dict) and node is not tagged and part == node.get("type"):
            tagged = node  # pydantic's tag follows the union field, even when a key has the same name
            continue
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(node.get("settings"), dict) and part in node["settings"]:
            out += ["settings", part]  # a component written in the older {type, settings} shape
            node = node["settings"][part]
        elif isinstance(node, dict) and isinstance(part, str) and node.get("type", None) is not None:
            continue  # a union tag such as 'parametric'
        elif isinstance(node, dict) and isinstance(part, str):
            out.append(part)  # a missing or unknown key: keep it, it is the point of the error
            node = None
        else:
            continue
    return tuple(out)


def _format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_campaign(text: str, source: str = "<campaign>", base_dir: Path | None = None) -> Campaign:
    """Validate campaign YAML text; raise :class:`CampaignFileError` naming every problem.

    Beyond the format, the generator and surrogate are checked as the loop will use them
    (:mod:`agent.spec.components`); ``base_dir`` resolves relative data paths in their settings.
    """
    if len(text) > MAX_BYTES:
        raise CampaignFileError(source, [SpecProblem("", f"is longer than {MAX_BYTES:,} characters; a campaign file "
                                                         "is a few kilobytes")])
    try:
        data, lines = load_yaml(text)
    except YamlRefused as exc:
        raise CampaignFileError(source, [SpecProblem(_format_loc(p.loc), p.message, p.line)
                                         for p in exc.problems]) from None
    if not isinstance(data, dict):
        raise CampaignFileError(source, [SpecProblem("", "the file must be a mapping of campaign fields", 1)])
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise CampaignFileError(source, _problems_from(exc, lines, data)) from exc
    except MemoryError:
        raise
    except Exception as exc:  # a check that trips over odd input must still answer in one sentence
        raise CampaignFileError(source, [SpecProblem("", f"cannot be checked: {_plain(exc)}")]) from exc
    from agent.spec.components import component_problems

    try:
        found = component_problems(campaign, base_dir)
    except MemoryError:
        raise
    except Exception as exc:  # the generator/surrogate checks are code of their own; never a traceback
        found = [((), f"its components cannot be checked: {_plain(exc)}")]
    problems = [SpecProblem(_format_loc(loc), message, _line_of(loc, lines)) for loc, message in found]
    if problems:
        raise CampaignFileError(source, problems)
    return campaign


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of ``loc``, or of its nearest enclosing field that the file spells out."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file."""
    path = Path(path)
    return parse_campaign(read_campaign_text(path), source=str(path), base_dir=path.parent)


def read_campaign_text(path: Path, *, limit: int = MAX_BYTES, what: str = "campaign file") -> str:
    """The text of a campaign file: a regular file of at most ``limit`` bytes of UTF-8.

    Opened without blocking (a FIFO would otherwise wait for a writer) and checked to be a regular
    file before anything is read, so a device such as ``/dev/zero`` is refused, not read forever.
    Other small YAML files from outside (a benchmark's problem file) are read the same way; ``what`` names
    the kind of file in the refusals.
    """
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CampaignFileError(source, [SpecProblem("", f"cannot read file: {exc.strerror}")]) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise CampaignFileError(source, [SpecProblem("", f"is a directory; give the path of a {what}")])
        if not stat.S_ISREG(mode):
            raise CampaignFileError(source, [SpecProblem("", "is not a regular file (a FIFO, device or socket); "
                                                             f"give the path of a {what}")])
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise CampaignFileError(source, [SpecProblem("", f"cannot read file: {exc.strerror}")]) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise CampaignFileError(source, [SpecProblem("", f"is larger than {limit:,} bytes; a {what} "
                                                         "is a few kilobytes")])
    return decode_campaign_bytes(data, source, what)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def decode_campaign_bytes(data: bytes, source: str = "<campaign>", what: str = "campaign file") -> str:
    """UTF-8 (with or without a byte-order mark) → text; anything else is refused in one sentence."""
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise CampaignFileError(source, [SpecProblem("", f"is {name} text; save it as UTF-8", 1)])
    data = data.removeprefix(codecs.BOM_UTF8)
    nul = data.find(b"\0")
    if nul >= 0:
        raise CampaignFileError(source, [SpecProblem(
            "", f"contains NUL bytes: it is a binary file or UTF-16/UTF-32 text, not a UTF-8 {what}",
            data.count(b"\n", 0, nul) + 1)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CampaignFileError(source, [SpecProblem(
            "", f"is not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded); save it as UTF-8", line)]) from None


def _plain(exc: BaseException) -> str:
    """An unexpected error as one line: its kind and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def dump_campaign(campaign: Campaign) -> str:
    """Campaign → YAML text that :func:`parse_campaign` reads back to an equal campaign."""
    data = campaign.model_dump(mode="json", exclude_defaults=False)
    budget = data.get("budget", {})
    if campaign.budget.wall_clock is not None:
        budget["wall_clock"] = campaign.budget.wall_clock.total_seconds()
    return yaml.safe_dump(data, sort_keys=False)
