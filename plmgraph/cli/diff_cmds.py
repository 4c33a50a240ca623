"""`plmgraph diff` and `plmgraph draw` (torch-free).

    plmgraph diff gpt2 llama2-7b                # grouped table of changes, parameter and FLOP deltas
    plmgraph diff gpt2 llama2-7b --structure    # structural changes only
    plmgraph diff bert-base albert-base --json  # machine-readable
    plmgraph diff gpt2 llama2-7b -o diff.svg    # both architectures side by side, changes marked
    plmgraph draw t5-base -o t5.svg             # .svg .png .pdf .dot
    plmgraph draw --zoo -o zoo.svg              # the zoo as a family tree
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import JSON_HELP, OVERRIDE_HELP, app, out, print_json, run

if TYPE_CHECKING:
    from ..graph.diff import ArchDiff

FORMATS_HELP = "Output file; the extension picks the format: .svg, .png, .pdf or .dot."


@app.command("diff")
def diff_cmd(
    a: Annotated[str, typer.Argument(help="The architecture to start from: zoo name or spec file.", metavar="A")],
    b: Annotated[str, typer.Argument(help="The architecture to compare with: zoo name or spec file.", metavar="B")],
    structure: Annotated[
        bool, typer.Option("--structure", "-s", help="Only structural changes; ignore sizes and hyper-parameters.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also draw both architectures side by side. " + FORMATS_HELP)
    ] = None,
    override: Annotated[
        list[str] | None, typer.Option("--override", "-O", help="Edit B before comparing (so `diff gpt2 gpt2 -O "
                                       "attention.kv_heads=4` shows what an edit changes). " + OVERRIDE_HELP)
    ] = None,
    override_a: Annotated[
        list[str] | None, typer.Option("--override-a", help="Edit A before comparing (same syntax as -O).")
    ] = None,
    seq_len: Annotated[
        int | None, typer.Option("--seq-len", "-T", min=1, help="Context length for both models' FLOPs "
                                 "(default: the smaller of their max_positions).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Compare two architectures: what changed, grouped by axis, with parameter and FLOP deltas."""

    def go() -> None:
        from ..graph.diff import diff
        from ..spec import load_spec

        if output is not None:
            from plmgraph.exporters.graphviz import check_path

            from .outputs import check_file

            check_file(check_path(output))
        delta = diff(load_spec(a, override_a), load_spec(b, override), structure=structure, seq_len=seq_len)
        written = None
        if output is not None:
            from plmgraph.exporters.graphviz import draw_diff

            written = draw_diff(delta, path=output)
        if as_json:
            data = delta.to_json()
            if written is not None:
                data["output"] = str(written)
            print_json(data)
            return
        print_diff(delta)
        if written is not None:
            out.print(f"wrote {written}", highlight=False)

    run(go)


def print_diff(delta: ArchDiff) -> None:
    """The rich terminal view of a diff: a grouped change table and a cost table."""
    from ..graph.diff import AXIS_TITLES
    from .table import Table

    a, b = delta.a.name, delta.b.name
    n, ns = len(delta.changes), len(delta.structural)
    if not delta.changes:
        what = "structural differences" if delta.structure else "differences"
        out.print(f"{a} → {b}: no {what} (the resolved architectures are the same)", highlight=False)
    else:
        kind = "structural changes" if delta.structure else f"changes ({ns} structural)"
        t = Table(title=f"{a} → {b}: {n} {kind}", title_justify="left")
        t.add_column("axis", style="bold")
        t.add_column("what")
        t.add_column("change")
        t.add_column("where", style="dim")
        for axis, changes in delta.by_axis().items():
            for i, c in enumerate(changes):
                style = None if c.structural else "dim"
                what = "" if c.what.lower() == axis else c.what
                t.add_row(AXIS_TITLES[axis] if i == 0 else "", what, c.text, ", ".join(c.where), style=style)
            t.add_section()
        out.print(t)
    if delta.structure:
        return
    cost = delta.cost()
    sa, _ = delta.stats
    t = Table(title="cost", title_justify="left")
    for col, just in ((" ", "left"), (a, "right"), (b, "right"), ("change", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    t.add_row("parameters", *_cost_row(cost["params"]))
    t.add_row(f"FLOPs/token (T={sa.seq_len})", *_cost_row(cost["flops_per_token"]))
    t.add_row("KV cache/token (bf16)", *_cost_row(cost["kv_bytes_per_token_bf16"], _bytes))
    out.print(t)


def _cost_row(row: dict[str, Any], fmt: Any = None) -> list[str]:
    if fmt is None:
        from ..graph.diff import human_count as fmt
    x, y, d = row["a"], row["b"], row["delta"]
    sign = "+" if d > 0 else ("−" if d < 0 else "±")
    change = f"{sign}{fmt(abs(d))}"
    if x and y and d:
        change += f" (×{y / x:.3g})"
    return [fmt(x), fmt(y), change]


def _bytes(n: float) -> str:
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.3g} {suffix}"
    return f"{n:g} B"


@app.command("draw")
def draw_cmd(
    spec: Annotated[
        str | None, typer.Argument(help="Zoo name or path to a spec .yaml file (omit with --zoo).", metavar="SPEC")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help=FORMATS_HELP + " Default: <name>.svg.")
    ] = None,
    layers: Annotated[
        str, typer.Option("--layers", help="`one`: one layer inside a × N box; `all`: every layer.")
    ] = "one",
    zoo: Annotated[
        bool, typer.Option("--zoo", help="Draw the whole zoo as a family tree (extends + nearest relatives).")
    ] = False,
    override: Annotated[list[str] | None, typer.Option("--override", "-O", help=OVERRIDE_HELP)] = None,
) -> None:
    """Draw an architecture diagram (or, with --zoo, the zoo's family tree) with Graphviz."""

    def go() -> None:
        from plmgraph.exporters.graphviz import check_path, draw, draw_zoo

        from ..errors import UsageError
        from ..spec import load_spec
        from .outputs import check_file

        if layers not in ("one", "all"):
            raise UsageError(f"--layers must be 'one' or 'all', not {layers!r}")
        if zoo and spec is not None:
            raise UsageError("give either SPEC or --zoo, not both")
        if zoo and override:
            raise UsageError("--override edits one spec; it cannot be used with --zoo")
        if not zoo and spec is None:
            raise UsageError("missing SPEC: give a zoo name or spec file, or --zoo for the family tree")
        if zoo:
            path = check_file(check_path(output or "zoo.svg"))
            written = draw_zoo(path)
        else:
            assert spec is not None
            if output is not None:
                check_file(check_path(output))  # before the spec is read: a bad -o fails fast
            s = load_spec(spec, override)
            written = draw(s, output or check_file(f"{s.name}.svg"), layers=layers)
        out.print(f"wrote {written}", highlight=False)

    run(go)
