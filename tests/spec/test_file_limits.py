"""Campaign files that cannot hurt: every refusal of a broken or hostile file is one sentence naming field and line."""

from __future__ import annotations

import codecs
import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from agent.spec import Budget, CampaignFileError, Measurement, Stopping, load_campaign, parse_campaign
from agent.spec.campaign import MAX_DURATION, parse_duration
from agent.spec.loader import MAX_BYTES
from agent.spec.safe_yaml import MAX_DEPTH, MAX_ITEMS, MAX_NODES
from cli import app
from tests.spec.test_campaign_files import BASE


def problems(text: str) -> list:
    with pytest.raises(CampaignFileError) as info:
        parse_campaign(text, source="c.yaml")
    return info.value.problems


def one_problem(text: str):
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def file_problem(path: Path):
    with pytest.raises(CampaignFileError) as info:
        load_campaign(path)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


# --- YAML structure -------------------------------------------------------------------------------------------


def test_a_duplicate_key_is_refused_with_both_lines() -> None:
    p = one_problem(BASE + "batch_size: 5\n")
    assert p.path == "batch_size" and p.line == 15
    assert "appears twice (first on line 11)" in p.message


def test_a_duplicate_nested_key_is_named() -> None:
    p = one_problem(BASE.replace("{property: y, goal: maximize}", "{property: y, goal: maximize, goal: minimize}"))
    assert p.path == "objectives[0].goal" and p.line == 9 and "appears twice" in p.message


def test_a_merge_key_may_be_overridden_without_being_a_duplicate() -> None:
    text = BASE.replace("adapters: {lab: {type: simlab}}",
                        "adapters:\n  base: &b {type: simlab, url: 'http://a'}\n  lab: {<<: *b, url: 'http://b'}")
    campaign = parse_campaign(text)
    assert campaign.adapters["lab"].url == "http://b"


def test_nesting_deeper_than_the_limit_is_refused_with_field_and_line() -> None:
    deep = "[" * (MAX_DEPTH + 10) + "]" * (MAX_DEPTH + 10)
    p = one_problem(BASE + f"generator:\n  settings:\n    x: {deep}\n")
    assert p.path.startswith("generator.settings.x[0]") and p.line == 17
    assert f"nested more than {MAX_DEPTH} levels deep" in p.message


def test_a_million_open_brackets_are_refused_without_recursion() -> None:
    """Far past any recursion limit; refused by the length limit or the depth limit, never a RecursionError."""
    for text in ["x: " + "[" * (MAX_BYTES - 10), "x: " + "{a: " * 200_000]:
        assert len(problems(text)) == 1


def test_nesting_at_the_limit_is_read() -> None:
    deep = "[" * (MAX_DEPTH - 3) + "1" + "]" * (MAX_DEPTH - 3)
    p = one_problem(BASE + f"generator:\n  settings:\n    x: {deep}\n")
    assert "nested" not in p.message  # refused by the generator for an unknown setting, not by the reader


def test_a_recursive_alias_is_refused() -> None:
    p = one_problem(BASE + "generator:\n  settings: &s {x: *s}\n")
    assert p.path == "generator.settings.x" and p.line == 16 and "recursive alias" in p.message


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    bomb = "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 12))
    p = one_problem(BASE + "generator:\n  settings:\n" + "".join("    " + line + "\n" for line in bomb.splitlines()))
    assert p.path.startswith("generator.settings.x") and f"more than {MAX_NODES} values" in p.message


def test_aliases_that_nest_past_the_depth_limit_are_refused() -> None:
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, MAX_DEPTH + 5)]
    p = one_problem("\n".join(lines) + "\n")
    assert f"more than {MAX_DEPTH} levels deep" in p.message and p.line is not None


def test_an_over_long_list_is_refused_naming_it() -> None:
    options = ", ".join(f"o{i}" for i in range(MAX_ITEMS + 1))
    p = one_problem(BASE.replace("options: [a, b]", f"options: [{options}]"))
    assert p.path == "space.parameters[2].options" and p.line == 7
    assert f"more than {MAX_ITEMS} entries" in p.message


def test_ten_thousand_categorical_options_are_read() -> None:
    options = ", ".join(f"o{i}" for i in range(MAX_ITEMS))
    campaign = parse_campaign(BASE.replace("options: [a, b]", f"options: [{options}]"))
    assert len(campaign.parametric.parameters[2].options) == MAX_ITEMS


def test_too_many_values_in_all_are_refused() -> None:
    lists = "".join(f"    k{j}: [{', '.join(['1'] * 9000)}]\n" for j in range(MAX_NODES // 9000 + 1))
    p = one_problem(BASE + "generator:\n  settings:\n" + lists)
    assert p.path.startswith("generator.settings.k") and f"more than {MAX_NODES} values" in p.message


def test_yaml_tags_that_would_run_code_are_refused() -> None:
    p = one_problem(BASE + "x: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in p.message and p.line == 15


# --- numbers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["99999999999999999999", "-9007199254740993", "9" * 5000, "1.0e+300"])
def test_numbers_beyond_2_53_are_refused_with_field_and_line(value: str) -> None:
    p = one_problem(BASE.replace("max_experiments: 20", f"max_experiments: {value}"))
    assert p.path == "budget.max_experiments" and p.line == 10 and "out of range" in p.message
    assert len(p.message) < 200


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1.0e+999", "1.0e999"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    """YAML 1.1 reads ``1.0e999`` (no exponent sign) as text, which pydantic then reads as a float: the model's
    own ``allow_inf_nan=False`` refuses it."""
    p = one_problem(BASE.replace("adapter: lab}", f"adapter: lab, cost: {value}}}"))
    assert p.path == "measurements[0].cost" and p.line == 14 and "finite number" in p.message


def test_non_finite_numbers_are_refused_by_the_models_too() -> None:
    """A spec read back from the database is not YAML; the models themselves refuse what cannot be a cost."""
    for build in [lambda: Measurement(properties=["y"], adapter="lab", cost=float("inf")),
                  lambda: Budget(max_cost=float("nan")),
                  lambda: Stopping(min_improvement=float("inf"))]:
        with pytest.raises(ValidationError, match="finite number"):
            build()


# --- durations ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("90m", timedelta(minutes=90)), ("3h", timedelta(hours=3)), ("2d", timedelta(days=2)),
    (3600, timedelta(hours=1)), (0.5, timedelta(seconds=0.5)), ("PT2H", timedelta(hours=2)),
    (timedelta(days=1), timedelta(days=1)),
])
def test_durations_are_read(value, expected) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("99999999999999999999h", "longer than 3650 days"), (1e300, "longer than 3650 days"),
    (-1e300, "longer than zero"), (-1, "longer than zero"), (list(range(10_000)), "cannot read duration"),
    ("P99999999999D", "cannot read duration"), ("0", "cannot read duration"), (0, "longer than zero"),
    ("PT0S", "longer than zero"), (float("inf"), "not a finite number"), (True, "cannot read duration"),
    ([1], "cannot read duration"), ({"h": 1}, "cannot read duration"), ("soon", "cannot read duration"),
    (MAX_DURATION + timedelta(seconds=1), "longer than 3650 days"),
])
def test_impossible_durations_are_one_sentence(value, expected) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_duration(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("99999999999999999999h", "longer than 3650 days"), ("0", "longer than zero"), ("0h", "longer than zero"),
    ("[1]", "cannot read duration"), ("true", "cannot read duration"),
])
def test_a_wall_clock_that_cannot_be_is_named_in_the_file(value: str, expected: str) -> None:
    p = one_problem(BASE.replace("max_experiments: 20", f"max_experiments: 20, wall_clock: {value}"))
    assert p.path == "budget.wall_clock" and p.line == 10 and expected in p.message


# --- text and bytes -------------------------------------------------------------------------------------------


def test_a_lone_surrogate_escape_is_refused() -> None:
    p = one_problem(BASE.replace("name: t1", 'name: t1\ndescription: "a \\ud800 b"'))
    assert p.line == 2 and "Unicode" in p.message


def test_text_holding_a_lone_surrogate_is_refused_with_its_line() -> None:
    p = one_problem(BASE.replace("batch_size: 4", "batch_size: 4 # \ud800"))
    assert p.line == 11 and "lone surrogate" in p.message


@pytest.mark.parametrize(("data", "expected"), [
    (BASE.encode("utf-16"), "is UTF-16 text"),
    (BASE.encode("utf-32"), "is UTF-32 text"),
    (BASE.encode("utf-16-le"), "contains NUL bytes"),
    (bytes(range(256)), "contains NUL bytes"),
    (BASE.encode().replace(b"batch_size", b"batch_\xffsize"), "is not UTF-8 text (byte 0xff"),
    (BASE.encode().replace(b"t1", "t\ud800".encode("utf-8", "surrogatepass")), "is not UTF-8 text (byte 0xed"),
])
def test_bytes_that_are_not_utf8_are_one_sentence(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    p = file_problem(path)
    assert expected in p.message and p.line is not None


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(codecs.BOM_UTF8 + BASE.encode())
    assert load_campaign(path).name == "t1"


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(BASE.encode() + b"#" * MAX_BYTES)
    assert "is larger than 1,000,000 bytes" in file_problem(path).message


def test_non_regular_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block forever
    for path in [fifo, Path("/dev/zero")]:
        assert "is not a regular file" in file_problem(path).message
    assert "is a directory" in file_problem(tmp_path).message
    assert "cannot read file: No such file or directory" in file_problem(tmp_path / "nope.yaml").message


# --- the CLI prints any text safely ---------------------------------------------------------------------------


def validate(path: Path):
    return CliRunner().invoke(app, ["validate", str(path)])


def test_validate_prints_markup_and_control_characters_in_keys_literally(tmp_path: Path) -> None:
    path = tmp_path / "[red]bad.yaml"
    path.write_text(BASE + "'[bold]x[/]': 1\n\"\\e[31mred\": 2\n'[/]': 3\n")
    result = validate(path)
    assert result.exit_code == 2, result.output
    assert f"{path} is not a valid campaign:" in result.output
    assert "[bold]x[/]: unknown key" in result.output and "[/]: unknown key" in result.output
    assert "\\x1b[31mred: unknown key" in result.output and "\x1b" not in result.output
    assert "Traceback" not in result.output


def test_validate_prints_a_valid_campaign_with_markup_in_its_text(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE.replace("name: t1", "name: t1\ndescription: 'close [/] or [bold]open'"))
    result = validate(path)
    assert result.exit_code == 0, result.output
    assert "close [/] or [bold]open" in result.output and "is a valid campaign" in result.output


@pytest.mark.parametrize("target", ["dir", "fifo", "/dev/zero", "missing"])
def test_validate_answers_exit_2_for_what_is_not_a_campaign_file(tmp_path: Path, target: str) -> None:
    path = {"dir": tmp_path, "fifo": tmp_path / "f", "/dev/zero": Path("/dev/zero"), "missing": tmp_path / "m"}[target]
    if target == "fifo":
        os.mkfifo(path)
    result = validate(path)
    assert result.exit_code == 2 and "is not a valid campaign" in result.output
    assert result.output.count("\n") == 2  # the heading and one sentence


def test_validate_prints_an_undecodable_file_name_escaped(tmp_path: Path) -> None:
    """A name that is not UTF-8 reaches Python as lone surrogates (surrogateescape); printing them must not crash."""
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/bad\xff.yaml"))
    path.write_text(BASE + "batchsize: 3\n")
    result = validate(path)
    assert result.exit_code == 2, result.output
    assert "bad\\udcff.yaml is not a valid campaign" in result.output


def test_a_check_that_trips_over_odd_numbers_is_still_one_sentence() -> None:
    """A simplex total of 1e15 in steps of 1e-300 makes ``total / step`` infinite and ``round`` raise ``OverflowError`` inside the
    space's own validator; the reader turns whatever a check raises into a problem, never a traceback."""
    text = BASE.replace(
        "    - {name: c, type: categorical, options: [a, b]}\n",
        "    - {name: z, type: continuous, bounds: [0.0, 1.0]}\n  simplex:\n"
        "    - {parameters: [x, z], total: 1.0e+15, step: 1.0e-300}\n",
    )
    p = one_problem(text)
    assert "cannot be checked: OverflowError" in p.message
