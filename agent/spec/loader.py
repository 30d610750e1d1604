"""Reading campaign files: YAML → validated :class:`Campaign`, with errors that name the field and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.spec.campaign import Campaign
from matloop.config import ConfigFieldError

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


def _line_index(node: yaml.Node, loc: Loc = (), index: dict[Loc, int] | None = None) -> dict[Loc, int]:
    """Map every field path in the YAML document to its 1-based line number."""
    index = {} if index is None else index
    index.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            index[loc + (key,)] = key_node.start_mark.line + 1
            _line_index(value_node, loc + (key,), index)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index[loc + (i,)] = item.start_mark.line + 1
            _line_index(item, loc + (i,), index)
    return index


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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise CampaignFileError(source, [SpecProblem("", f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]) from exc
    if not isinstance(data, dict):
        raise CampaignFileError(source, [SpecProblem("", "the file must be a mapping of campaign fields", 1)])
    lines = _line_index(node) if node is not None else {}
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise CampaignFileError(source, _problems_from(exc, lines, data)) from exc
    from agent.spec.components import component_problems

    problems = [SpecProblem(_format_loc(loc), message, _line_of(loc, lines))
                for loc, message in component_problems(campaign, base_dir)]
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
    try:
        text = path.read_text()
    except OSError as exc:
        raise CampaignFileError(str(path), [SpecProblem("", f"cannot read file: {exc.strerror}")]) from exc
    return parse_campaign(text, source=str(path), base_dir=path.parent)


def dump_campaign(campaign: Campaign) -> str:
    """Campaign → YAML text that :func:`parse_campaign` reads back to an equal campaign."""
    data = campaign.model_dump(mode="json", exclude_defaults=False)
    budget = data.get("budget", {})
    if campaign.budget.wall_clock is not None:
        budget["wall_clock"] = campaign.budget.wall_clock.total_seconds()
    return yaml.safe_dump(data, sort_keys=False)
