"""YAML → plain data, within limits that a hostile or broken campaign file cannot get past.

PyYAML's safe loader runs no code, but it will still follow a "billion laughs" alias bomb into
gigabytes, recurse until ``RecursionError`` on deeply nested or self-referencing nodes, quietly
keep the last of two equal keys, and hand back ``.inf`` or a 400-digit integer for a cost.  A
campaign file is a few hundred values, so we read it in three passes, each bounded before the
next one allocates:

1. the event stream (libyaml, no recursion, nothing kept): nesting depth, values per list or
   mapping, and the number of values in the text, each refused with the field and line;
2. composing the node graph (now known to be small), then one walk over it that counts what the
   aliases *expand* to (refusing recursive aliases and bombs), refuses duplicate keys, lone
   surrogates, and numbers that are not finite or beyond ±2**53 (where a float stops counting
   integers exactly, and far beyond any cost, bound or count a campaign means), and records the
   line of every field;
3. constructing Python objects from that checked graph.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

Loc = tuple[str | int, ...]

MAX_DEPTH = 50  #: lists/mappings inside each other, aliases expanded
MAX_ITEMS = 10_000  #: entries of one list or mapping
MAX_NODES = 50_000  #: values in the whole document, aliases counted each time they are used
MAX_NUMBER = 2**53  #: the largest magnitude of any number

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: fast, and no Python recursion
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SHOWN_DEPTH = 8  # a refusal for depth names the first levels of its path, not all fifty
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class YamlProblem:
    """One reason the text cannot be read as data: the field path (as far as known), line, message."""

    loc: Loc
    message: str
    line: int | None


class YamlRefused(Exception):
    """The text is not YAML we accept; ``problems`` says why (at least one)."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def find_surrogate(text: str) -> int | None:
    """The 1-based line of the first lone surrogate (a code point no UTF-8 file can hold), if any."""
    m = _SURROGATE.search(text)
    return None if m is None else text.count("\n", 0, m.start()) + 1


def load_yaml(text: str) -> tuple[Any, dict[Loc, int]]:
    """Parse ``text`` to plain data and a map of field path → 1-based line; raise :class:`YamlRefused`."""
    line = find_surrogate(text)
    if line is not None:
        raise YamlRefused([YamlProblem((), "contains a lone surrogate character (not valid Unicode text)", line)])
    try:
        _scan_events(text)
        node = yaml.compose(text, Loader=_Loader)
        if node is None:
            return None, {}
        lines = _Walk().run(node)
        data = yaml.constructor.SafeConstructor().construct_document(node)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control characters)
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise YamlRefused([YamlProblem((), f"not valid YAML: character #x{exc.character:04x} is not allowed "
                                           "(control characters are not)", line)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        context, problem = getattr(exc, "context", None), getattr(exc, "problem", None)
        what = ", ".join(str(part) for part in (context, problem) if part) or str(exc).splitlines()[0]
        raise YamlRefused([YamlProblem((), f"not valid YAML: {what}", mark.line + 1 if mark else None)]) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise YamlRefused([YamlProblem((), f"not readable: {exc}", None)]) from None
    return data, lines


def _scan_events(text: str) -> None:
    """Refuse too deep, too long or too many values from the event stream, before any node is built."""
    stack: list[list[Any]] = []  # [is_mapping, entries seen, current key]
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        total += 1
        line = event.start_mark.line + 1
        if stack:
            frame = stack[-1]
            if frame[0] and frame[1] % 2 == 0:
                frame[2] = event.value if isinstance(event, yaml.ScalarEvent) else "?"
            frame[1] += 1
            entries = (frame[1] + 1) // 2 if frame[0] else frame[1]
            if entries > MAX_ITEMS:
                kind = "mapping" if frame[0] else "list"
                raise _refused(stack[:-1], f"this {kind} has more than {MAX_ITEMS} entries", line)
        if total > MAX_NODES:
            raise _refused(stack, f"the file holds more than {MAX_NODES} values", line)
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([isinstance(event, yaml.MappingStartEvent), 0, None])
            if len(stack) > MAX_DEPTH:
                raise _refused(stack[:-1], f"nested more than {MAX_DEPTH} levels deep", line)


def _refused(stack: list[list[Any]], message: str, line: int) -> YamlRefused:
    """A refusal located at the path that ``stack`` (the enclosing collections, each at its current entry) spells."""
    loc = tuple(str(key) if is_mapping else seen - 1 for is_mapping, seen, key in stack[:_SHOWN_DEPTH])
    return YamlRefused([YamlProblem(loc, message, line)])


class _Walk:
    """One pass over the composed node graph; each node is checked once, however many aliases share it."""

    def __init__(self) -> None:
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) → (values it expands to, levels below it)
        self.open: set[int] = set()
        self.lines: dict[Loc, int] = {}
        self.problems: list[YamlProblem] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def run(self, root: yaml.Node) -> dict[Loc, int]:
        self.visit(root, (), 0)
        if self.problems:
            raise YamlRefused(self.problems)
        return self.lines

    def visit(self, node: yaml.Node, loc: Loc, depth: int) -> tuple[int, int]:
        line = node.start_mark.line + 1
        self.lines.setdefault(loc, line)
        key = id(node)
        if key in self.open:
            raise YamlRefused([YamlProblem(loc[:_SHOWN_DEPTH], "a recursive alias (an anchor used inside itself)", line)])
        if key in self.sizes:  # an alias to a node already checked: count what it expands to again
            size, height = self.sizes[key]
        else:
            self.open.add(key)
            size, height = self._first_visit(node, loc, depth)
            self.open.discard(key)
            self.sizes[key] = (size, height)
        if depth + height > MAX_DEPTH:
            raise YamlRefused([YamlProblem(loc[:_SHOWN_DEPTH], f"aliases nest values more than {MAX_DEPTH} levels deep",
                                           line)])
        return size, height

    def _first_visit(self, node: yaml.Node, loc: Loc, depth: int) -> tuple[int, int]:
        if isinstance(node, yaml.ScalarNode):
            self._check_scalar(node, loc)
            return 1, 0
        if depth + 1 > MAX_DEPTH:
            raise YamlRefused([YamlProblem(loc[:_SHOWN_DEPTH], f"aliases nest values more than {MAX_DEPTH} levels "
                                           "deep", node.start_mark.line + 1)])
        size, height = 1, 0
        if isinstance(node, yaml.SequenceNode):
            children = [((i,), item) for i, item in enumerate(node.value)]
        else:
            children = self._mapping_children(node, loc)
        for sub, child in children:
            child_size, child_height = self.visit(child, loc + sub, depth + 1)
            size += child_size
            height = max(height, child_height + 1)
            if size > MAX_NODES:
                raise YamlRefused([YamlProblem(loc, f"aliases expand this to more than {MAX_NODES} values",
                                               node.start_mark.line + 1)])
        return size, height

    def _mapping_children(self, node: yaml.MappingNode, loc: Loc) -> list[tuple[Loc, yaml.Node]]:
        """Keys and values to visit; a key that appears twice is a problem (YAML would keep only the last)."""
        children: list[tuple[Loc, yaml.Node]] = []
        seen: dict[Any, int] = {}  # key → line of its first appearance
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                key = self.constructor.construct_object(key_node)
                name = key_node.value
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                    if first is None:
                        seen[key] = line
                except TypeError:  # unhashable (e.g. a binary key): the constructor refuses it with its line
                    first = None
                if first is not None:
                    self.problems.append(YamlProblem(loc + (name,), f"key {name!r} appears twice (first on line "
                                                     f"{first}); YAML would keep only the last", line))
                children.append(((name,), key_node))
                children.append(((name,), value_node))
            else:
                children.append(((), key_node))
                children.append((("<<",) if key_node.tag == _MERGE_TAG else (), value_node))
        return children

    def _check_scalar(self, node: yaml.ScalarNode, loc: Loc) -> None:
        line = node.start_mark.line + 1
        if _SURROGATE.search(node.value):  # a "\\ud800" escape: valid YAML syntax, but no text can hold it
            self.problems.append(YamlProblem(loc, "contains a lone surrogate character (not valid Unicode text)", line))
            return
        if node.tag not in (_INT_TAG, _FLOAT_TAG):
            return
        if node.tag == _INT_TAG and len(node.value) > 40:  # Python refuses to convert 4,300 digits: say so first
            self.problems.append(YamlProblem(loc, f"{_short(node.value)} is out of range (numbers must lie "
                                             f"within ±2**53, about ±9e15)", line))
            return
        value = self.constructor.construct_object(node)
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append(YamlProblem(loc, f"{node.value} is not a finite number", line))
        elif abs(value) > MAX_NUMBER:
            self.problems.append(YamlProblem(loc, f"{_short(node.value)} is out of range (numbers must lie "
                                             f"within ±2**53, about ±9e15)", line))


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
