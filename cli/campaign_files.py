"""``matloop init`` and ``matloop validate``: writing and checking campaign files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from agent.spec import Campaign, CampaignFileError, load_campaign
from agent.spec.campaign import DEFAULT_CURRENCY
from cli.common import EXIT_INVALID, console, err_console, fail
from matloop.space import CategoricalParameter, ParametricSpace


def template_names() -> list[str]:
    folder = resources.files("agent.templates")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def template_text(name: str) -> str:
    path = resources.files("agent.templates") / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(name)
    return path.read_text()


def init(
    path: Path = typer.Argument(..., help="where to write the campaign file"),
    template: str = typer.Option("oer", "--template", "-t", help="which example to start from"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write a commented example campaign file to PATH."""
    try:
        text = template_text(template)
    except KeyError:
        raise fail(f"no template {template!r}; templates: {', '.join(template_names())}") from None
    if path.exists() and not force:
        raise fail(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    console.print(f"wrote the [bold]{template}[/] campaign to {path}; check it with `matloop validate {path}`")


def shown(text: object, *, newlines: bool = False) -> Text:
    """User text (a path, a key, a description) made safe to print.

    It is never read as rich markup (a key named ``[bold]`` or ``[/]`` prints as written), and
    unprintable characters and lone surrogates, which no terminal encoding can write, are shown
    escaped (``\\x1b``, ``\\ud800``); newlines too unless ``newlines`` keeps a multi-line text whole.
    """
    keep = "\n" if newlines else ""
    return Text("".join(ch if ch.isprintable() or ch in keep else ch.encode("unicode_escape").decode("ascii")
                        for ch in str(text)))


def _row(table: Table, field: str, value: object) -> None:
    table.add_row(field, shown(value, newlines=True))


def summary_table(campaign: Campaign) -> Table:
    """A one-screen summary of a campaign."""
    table = Table(title=shown(f"campaign {campaign.name}"), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    if campaign.description:
        _row(table, "description", campaign.description)
    space = campaign.space
    if isinstance(space, ParametricSpace):
        params = []
        for p in space.parameters:
            if isinstance(p, CategoricalParameter):
                params.append(f"{p.name} ∈ {{{', '.join(p.options[:6])}{', …' if len(p.options) > 6 else ''}}}")
            else:
                params.append(f"{p.name} ∈ [{p.bounds[0]:g}, {p.bounds[1]:g}]")
        _row(table, "space", f"parametric, {len(space.parameters)} parameters")
        _row(table, "parameters", "\n".join(params))
        for g in space.simplex:
            step = f", step {g.step:g}" if g.step else ""
            _row(table, "simplex", f"{' + '.join(g.parameters)} = {g.total:g}{step}")
        for c in space.linear_constraints:
            lhs = " + ".join(f"{v:g}·{k}" for k, v in c.coefficients.items())
            _row(table, "constraint", f"{lhs} {c.op} {c.rhs:g}")
    else:
        _row(table, "space", f"{space.type}: {space.model_dump(exclude_defaults=True, exclude={'type'})}")
    for o in campaign.objectives:
        goal = f"target {o.target:g} ± {o.tolerance:g}" if o.goal == "target" else o.goal
        _row(table, "objective", f"{o.property}: {goal}{f' ({o.units})' if o.units else ''}")
    for c in campaign.constraints:
        _row(table, "outcome constraint", str(c))
    b = campaign.budget
    limits = [
        f"{b.max_experiments} experiments" if b.max_experiments else "",
        f"cost {b.max_cost:g} {b.currency}" if b.max_cost else "",
        f"{b.max_iterations} iterations" if b.max_iterations else "",
        f"wall clock {b.wall_clock}" if b.wall_clock else "",
    ]
    _row(table, "budget", ", ".join(x for x in limits if x))
    _row(table, "batch size", str(campaign.batch_size))
    approval = campaign.approval.policy
    if campaign.approval.cost_limit:
        approval += f" (cost limit {campaign.approval.cost_limit:g})"
    _row(table, "approval", approval)
    for m in campaign.measurements:
        adapter = campaign.adapters[m.adapter]
        _row(table, "measures", f"{', '.join(m.properties)} via {m.adapter} ({adapter.type}), "
                      f"fidelity {m.fidelity}, cost {m.cost:g}" + (f" {b.currency}" if b.currency != DEFAULT_CURRENCY else ""))
    _row(table, "generator / surrogate / acquisition",
                  f"{campaign.generator.type} / {campaign.surrogate.type} / {campaign.acquisition.type}")
    _row(table, "seed", str(campaign.seed))
    return table


def print_campaign_problems(exc: CampaignFileError) -> typer.Exit:
    """Print why a campaign file cannot be used, one line per problem, and return the exit (code 2) to raise.

    Every command that reads a campaign file should answer this way: the file's own text is shown
    escaped (see :func:`shown`), so no key, path or value can restyle the terminal or crash the printer.
    """
    source = shown(exc.source)
    source.stylize("bold red")
    err_console.print(Text.assemble(source, " is not a valid campaign:"), highlight=False)
    for problem in exc.problems:
        err_console.print(Text.assemble("  • ", shown(problem)), highlight=False)
    return typer.Exit(EXIT_INVALID)


def validate(path: Path = typer.Argument(..., help="the campaign file to check")) -> None:
    """Check a campaign file: exit 0 with a summary, or exit 2 with every problem."""
    try:
        campaign = load_campaign(path)
    except CampaignFileError as exc:
        raise print_campaign_problems(exc) from None
    console.print(summary_table(campaign))
    console.print(Text.assemble(("✓", "green"), " ", shown(path), " is a valid campaign"), highlight=False)


def templates() -> None:
    """List the campaign templates ``matloop init --template`` knows."""
    for name in template_names():
        console.print(name)


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(validate)
    app.command()(templates)
