"""Write the committed fuzz corpus of broken and hostile campaign files (``tests/spec/fuzz_corpus/``).

Run once (``python tests/spec/make_fuzz_corpus.py``) and commit the result; the fuzz test reads the
files, not this script, so a corpus that found a bug stays the same while the bug is fixed. Every
file is a mutation of a shipped template (``agent/templates/*.yaml``) or a hand-written attack
from the issue "Guard rails": byte flips, truncation, UTF-16/32 and binary bytes, deep nesting,
alias bombs and recursive aliases, huge and non-finite numbers, impossible durations, lone
surrogates, duplicate keys, giant lists, wrong types, unknown keys, rich markup and control
characters in keys, adapters and URLs that make no sense, a ``module:factory`` generator. The
random mutations are seeded, so running the script again writes the same files.
"""

from __future__ import annotations

import codecs
import random
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "agent" / "templates").glob("*.yaml"))
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
SEED = 25  # the number

Mutation = Callable[[random.Random, str, str], Iterator[tuple[str, bytes]]]


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _append_under(text: str, section: str, block: str) -> str:
    """``text`` with ``block`` (already indented by two) as extra settings of ``section`` (e.g. ``generator``)."""
    return re.sub(rf"(?m)^{section}:.*$", f"{section}:\n  settings:\n{block}", text, count=1) if re.search(
        rf"(?m)^{section}:", text) else text + f"{section}:\n  settings:\n{block}"


def truncations(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    data = _b(text)
    for i in range(5):
        yield f"truncated{i}", data[: rng.randrange(0, len(data))]


def byte_flips(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    for i in range(12):
        data = bytearray(_b(text))
        for _ in range(rng.choice([1, 1, 2, 4, 16])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield f"byteflip{i}", bytes(data)


def encodings(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    yield "utf16-bom", text.encode("utf-16")
    yield "utf16le-nobom", text.encode("utf-16-le")
    yield "utf32", text.encode("utf-32")
    yield "utf8-bom", codecs.BOM_UTF8 + _b(text)
    yield "latin1", text.replace("name:", "name: caf\u00e9\n_:", 1).encode("latin-1", "replace")


def line_edits(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    lines = text.splitlines(keepends=True)
    for i in range(4):
        edited = list(lines)
        j = rng.randrange(len(edited))
        op = i % 4
        if op == 0:
            del edited[j]
        elif op == 1:
            edited.insert(j, edited[rng.randrange(len(edited))])
        elif op == 2:
            edited[j] = "  " * rng.randrange(4) + edited[j].lstrip()
        else:
            rng.shuffle(edited)
        yield f"lines{i}", _b("".join(edited))


_SCALARS = ["null", "~", "true", "no", "[]", "{}", "-1", "0", "1.5", "'x'", "[1, 2]", "{a: 1}", ".inf", "-.inf",
            ".nan", "99999999999999999999", "1.0e+999", "-1.0e+999", "0x7fffffffffffffffff", "1:30:00",
            "2001-12-14t21:59:43.10-05:00", "!!binary aGVsbG8=", "'\\ud800'", "\"\\ud800\"", "*undefined",
            "&a [*a]", "!!python/name:os.system", "|\n  block", "'[bold]x[/]'", "\"\\e[2J\"", "\"\\0\""]


def value_swaps(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    """A ``key: value`` line's value replaced by a scalar of the wrong type or range."""
    lines = text.splitlines(keepends=True)
    keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z_]+:\s*\S", line) and not line.lstrip()
             .startswith("#")]
    for i in range(12):
        j = rng.choice(keyed)
        key = lines[j].split(":", 1)[0]
        edited = list(lines)
        edited[j] = f"{key}: {rng.choice(_SCALARS)}\n"
        yield f"value{i}", _b("".join(edited))


def unknown_keys(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    yield "unknown-top", _b(text + "batchsize: 3\n")
    yield "unknown-markup", _b(text + "'[bold]x[/]': 1\n'[/]': 2\n\"\\e[31mred\": 3\n")
    yield "unknown-nested", _b(text.replace("budget:", "budget:\n  max_experimentz: 3", 1))


def duplicates(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    yield "dup-top", _b(text + f"name: {name}-again\n")
    yield "dup-nested", _b(text.replace("budget:", "budget:\n  max_iterations: 3\n  max_iterations: 4", 1))


def numbers(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    numeric = list(re.finditer(r"(?<![\w.])-?\d+(\.\d+)?(?![\w.:])", text))
    for i, value in enumerate(["99999999999999999999", "9" * 4400, "1.0e+999", ".inf", ".nan", "-0", "1.0e-320",
                               "9007199254740993", "-9007199254740993", "1e999"]):
        m = rng.choice(numeric)
        yield f"number{i}", _b(text[: m.start()] + value + text[m.end():])


def budgets(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    for i, wall in enumerate(["99999999999999999999h", "0", "0h", "-1h", "''", "[]", "true", "PT0S", "P9999999999D",
                              "1.0e+300", ".nan"]):
        without = re.sub(r"(?m)^\s*wall_clock:.*\n", "", text)
        yield f"wallclock{i}", _b(re.sub(r"(?m)^budget:.*$", f"budget:\n  wall_clock: {wall}", without, count=1))
    yield "cost-inf", _b(re.sub(r"(?m)^(\s*)cost: .*$", r"\1cost: .inf", text, count=1) if "cost:" in text
                         else text.replace("measurements:\n  - ", "measurements:\n  - cost: .inf\n    ", 1))
    yield "maxcost-inf", _b(re.sub(r"(?m)^budget:.*$", "budget:\n  max_cost: .inf",
                                             re.sub(r"(?m)^\s*max_cost:.*\n", "", text), count=1))


def adapters(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    """Nonsense that the typed adapter configs refuse (exit 2 once they are in; 0 or 2 is all the corpus asks)."""
    for i, (kind, url) in enumerate([("warp-drive", None), ("simlab", "file:///etc/passwd"),
                                     ("simlab", "javascript:alert(1)"), ("simlab", "ftp://lab"), ("simlab", "")]):
        spec = f"{{type: {kind}" + (f", url: '{url}'" if url is not None else "") + "}"
        yield f"adapter{i}", _b(re.sub(r"(?m)^adapters:\n(?:  .*\n)+", f"adapters:\n  lab: {spec}\n", text, count=1))


def text_attacks(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    yield "surrogate-escape", _b(text.replace("name: ", 'description: "\\ud800 \\udfff"\nname: ', 1))
    yield "surrogate-raw", _b(text.replace("name: ", "name: \ud800", 1))
    yield "control-chars", _b(text.replace("name: ", "name: \x1b[2J\x07", 1))
    yield "nul", _b(text.replace("name: ", "name: \x00", 1))
    yield "markup-description", _b(re.sub(r"(?m)^description: .*$", "description: '[/] [bold]x [link=file:///]y'",
                                          text, count=1))


def structures(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    yield "deep-maps", _b(_append_under(text, "generator", "    x: " + "{a: " * 500 + "1" + "}" * 500 + "\n"))
    yield "deep-lists", _b(_append_under(text, "generator", "    x: " + "[" * 500 + "]" * 500 + "\n"))
    yield "deep-block", _b(_append_under(text, "generator", "".join("  " * (i + 2) + f"k{i}:\n" for i in range(200))
                                         + "  " * 202 + "v: 1\n"))
    yield "recursive-alias", _b(_append_under(text, "generator", "    x: &r {y: *r}\n"))
    bomb = "    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))
    yield "alias-bomb", _b(_append_under(text, "generator", bomb))
    yield "alias-merge-bomb", _b(_append_under(text, "surrogate", "    a: &a {x: 1}\n" + "".join(
        f"    m{i}: &m{i} {{<<: [*{'a' if i == 0 else f'm{i - 1}'}], k{i}: [{', '.join(['*a'] * 50)}]}}\n"
        for i in range(30))))


def documents(rng: random.Random, name: str, text: str) -> Iterator[tuple[str, bytes]]:
    yield "two-documents", _b(text + "---\n" + text)
    yield "list-document", _b("- " + text.replace("\n", "\n  "))
    yield "python-tag", _b(text + "x: !!python/object/apply:os.system ['echo pwned']\n")
    yield "tabs", _b(text.replace("  ", "\t", 3))


PER_TEMPLATE: list[Mutation] = [truncations, byte_flips, encodings, line_edits, value_swaps, unknown_keys, duplicates,
                                numbers, budgets, adapters, text_attacks, structures, documents]


def standalone(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Files that are not derived from one template: sizes, emptiness, raw binary."""
    oer = (ROOT / "agent" / "templates" / "oer.yaml").read_text()
    yield "empty", b""
    yield "comment-only", b"# nothing here\n"
    yield "scalar-document", b"42\n"
    yield "null-document", b"~\n"
    for i in range(5):
        yield f"binary{i}", rng.randbytes(rng.choice([16, 512, 4096]))
    yield "png-header", b"\x89PNG\r\n\x1a\n" + rng.randbytes(200)
    yield "gzip", b"\x1f\x8b\x08\x00" + rng.randbytes(200)
    # 200k categorical options: past the byte limit (refused before it is parsed)
    yield "options-200k", _b(oer + "x:\n  - [" + ",".join(f"{i:x}" for i in range(200_000)) + "]\n")
    # 12k options inside the byte limit: past the per-list limit
    yield "options-12k", _b(re.sub(r"(?ms)^space:\n.*?(?=^objectives:)", "space:\n  type: parametric\n  parameters:\n"
                                   "    - {name: ni_load, type: categorical, options: [" + ",".join(
                                       f"o{i}" for i in range(12_000)) + "]}\n", oer, count=1))
    yield "options-9k", _b(re.sub(r"(?ms)^space:\n.*?(?=^objectives:)", "space:\n  type: parametric\n  parameters:\n"
                                  "    - {name: ni_load, type: categorical, options: [" + ",".join(
                                      f"o{i}" for i in range(9_000)) + "]}\n", oer, count=1))
    yield "many-values", _b(oer + "x:\n" + "".join(f"  k{i}: [{', '.join(['1'] * 500)}]\n" for i in range(120)))
    yield "long-line", _b(re.sub(r"(?m)^description: .*$", "description: " + "x" * 100_000, oer, count=1))
    yield "module-factory-generator", _b(re.sub(r"(?ms)^generator:.*?(?=^\w)", "generator:\n  type: "
                                                "'collections:OrderedDict'\n", oer, count=1))
    yield "import-missing-module", _b(re.sub(r"(?ms)^generator:.*?(?=^\w)", "generator:\n  type: "
                                             "'no_such_module_xyz:make'\n", oer, count=1))


def main() -> None:
    rng = random.Random(SEED)
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir()
    n = 0
    for template in TEMPLATES:
        text = template.read_text()
        for mutation in PER_TEMPLATE:
            for kind, data in mutation(rng, template.stem, text):
                (CORPUS / f"{n:03d}-{template.stem}-{kind}.yaml").write_bytes(data)
                n += 1
    for kind, data in standalone(rng):
        (CORPUS / f"{n:03d}-{kind}.yaml").write_bytes(data)
        n += 1
    total = sum(p.stat().st_size for p in CORPUS.iterdir())
    print(f"wrote {n} files, {total / 1e6:.1f} MB, to {CORPUS}")


if __name__ == "__main__":
    main()
