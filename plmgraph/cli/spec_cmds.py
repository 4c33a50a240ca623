"""`plmgraph list`, `validate`, `show`, `schema`: read specs, never import torch.

The spec package (pydantic) and the graph (networkx) are imported inside each command, so
registering these commands costs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import JSON_HELP, OVERRIDE_HELP, app, err, fail, out, print_json, run

if TYPE_CHECKING:
    from ..spec import ModelSpec

SpecArg = Annotated[str, typer.Argument(help="Zoo name or path to a spec .yaml file.", metavar="SPEC")]
Override = Annotated[list[str] | None, typer.Option("--override", "-O", help=OVERRIDE_HELP)]
Json = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'; keeps three significant digits."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}{unit}"
    return f"{n:g}{unit}"


def human_bytes(n: float) -> str:
    for div, suffix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.3g} {suffix}"
    return f"{n:g} B"


# ----------------------------------------------------------------------------- list


@app.command("list")
def list_cmd(as_json: Json = False) -> None:
    """List the zoo: name, family, parameters, source."""

    def go() -> None:
        from ..graph import resolve
        from ..spec import load_spec, zoo_dir, zoo_names
        from .table import Table

        rows = []
        for name in zoo_names():
            spec = load_spec(name)
            rows.append(
                {
                    "name": name,
                    "family": spec.family,
                    "params": resolve(spec).num_params(),
                    "extends": spec.extends,
                    "source": spec.source,
                }
            )
        if as_json:
            print_json(rows)
            return
        t = Table(title=f"plmgraph zoo ({zoo_dir()})", title_justify="left")
        t.add_column("name", no_wrap=True)
        t.add_column("family", no_wrap=True)
        t.add_column("params", justify="right", no_wrap=True)
        t.add_column("source", overflow="ellipsis", no_wrap=True)
        for r in rows:
            t.add_row(r["name"], r["family"], f"{r['params']:,}", r["source"] or "")
        out.print(t)

    run(go)


# ------------------------------------------------------------------------- validate


@app.command("validate")
def validate_cmd(
    specs: Annotated[list[str] | None, typer.Argument(help="Zoo names or spec files.", metavar="SPEC...")] = None,
    zoo: Annotated[
        bool, typer.Option("--zoo", help="Validate every spec in the zoo (as well as any SPEC given).")
    ] = False,
    override: Override = None,
    as_json: Json = False,
) -> None:
    """Check spec files: print `ok` or every problem with file, line, field and what is allowed."""
    from ..graph import resolve
    from ..spec import PlmgraphError, SpecError, load_spec, zoo_names

    refs = list(specs or []) + (zoo_names() if zoo else [])
    if not refs:
        fail("give at least one SPEC, or --zoo", 2)
    results: list[dict[str, Any]] = []
    failed = False
    for ref in refs:
        try:
            spec = load_spec(ref, override)
            resolve(spec)
            results.append({"spec": ref, "ok": True, "name": spec.name, "problems": []})
            if not as_json:
                out.print(f"[green]ok[/] {spec.name} ({spec.source_file})", highlight=False)
        except SpecError as e:
            failed = True
            results.append({"spec": ref, "ok": False, "problems": [p.to_json() for p in e.problems]})
            if not as_json:
                for p in e.problems[: e.SHOWN]:
                    err.print(f"[bold red]error:[/] {_esc(str(p))}", highlight=False)
                if len(e.problems) > e.SHOWN:
                    err.print(f"... and {len(e.problems) - e.SHOWN} more problems", highlight=False)
        except PlmgraphError as e:
            failed = True
            results.append({"spec": ref, "ok": False, "problems": [{"file": None, "message": str(e)}]})
            if not as_json:
                err.print(f"[bold red]error:[/] {_esc(str(e))}", highlight=False)
    if as_json:
        print_json(results)
    if failed:
        raise typer.Exit(1)


def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)


# ----------------------------------------------------------------------------- show


@app.command()
def show(
    spec: SpecArg,
    override: Override = None,
    resolved: Annotated[
        bool, typer.Option("--resolved", help="Print the merged spec after `extends` and overrides, as YAML.")
    ] = False,
    seq_len: Annotated[
        int | None, typer.Option("--seq-len", "-T", min=1, help="Context length for FLOPs (default max_positions).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Show a spec: its stacks, and a table of parameters per block, FLOPs/token, KV-cache and memory."""

    def go() -> None:
        from ..graph import resolve, stats
        from ..spec import load_merged, load_spec, validate

        if resolved:
            import yaml

            merged = load_merged(spec, override)
            validate(merged)  # the merged text is only worth printing if it is valid
            data = {k: v for k, v in merged.data.items()}
            if as_json:
                print_json(data)
            else:
                chain = " <- ".join(Path(f).name for f in reversed(merged.files))
                out.print(f"# merged from: {chain}", highlight=False, markup=False)
                out.print(yaml.safe_dump(data, sort_keys=False, width=100).rstrip(), highlight=False, markup=False)
            return
        s = load_spec(spec, override)
        st = stats(resolve(s), seq_len)
        if as_json:
            print_json({"spec": s.model_dump(mode="json", exclude_none=True), "stats": st.to_json()})
            return
        _print_summary(s)
        _print_stats(st)

    run(go)


def _print_summary(s: ModelSpec) -> None:
    out.print(f"[bold]{s.name}[/]  {s.family}  [dim]{s.source or ''}[/]", highlight=False)
    sz = s.sizes
    out.print(
        f"  sizes: vocab {sz.vocab}, hidden {sz.hidden}, heads {sz.heads}, ffn {sz.ffn}, "
        f"max_positions {sz.max_positions}",
        highlight=False,
    )
    out.print(f"  position: {_kind_line(s.position.model_dump())}", highlight=False)
    if s.relative_position is not None:
        out.print(f"  relative_position: {_kind_line(s.relative_position.model_dump())}", highlight=False)
    for name, st in s.stacks.items():
        b = st.block
        at = b.attention
        out.print(
            f"  {name}: {st.layers} layers, {b.placement}-{b.norm.kind}, {b.residual.kind} residual, "
            f"attention {at.kind} ({s.sizes.heads} heads, {at.kv_heads} kv, head_dim {at.head_dim}, {at.mask}"
            f"{', window ' + str(at.window) if at.window else ''}{', cross' if b.cross_attention else ''}"
            f"{f', softcap {at.softcap:g}' if getattr(at, 'softcap', None) else ''}), "
            f"mlp {_kind_line(b.mlp.model_dump())}, final_norm {st.final_norm}",
            highlight=False,
        )
        if st.pattern is not None:
            from ..spec.pattern import pattern_words

            out.print(f"  {name} layer pattern: {pattern_words(st.pattern)}", highlight=False)
    if s.sharing.kind != "none":
        out.print(f"  sharing: {_kind_line(s.sharing.model_dump())}", highlight=False)
    heads = ", ".join(h.name if h.name == h.kind else f"{h.name} ({h.kind})" for h in s.heads) or "none"
    out.print(f"  heads: {heads}", highlight=False)
    if s.objectives:
        out.print(f"  objectives: {', '.join(o.kind for o in s.objectives)}", highlight=False)
    out.print(f"  init: {_kind_line(s.init.model_dump())}", highlight=False)


def _kind_line(d: dict[str, Any]) -> str:
    kind = d.pop("kind", "")
    rest = ", ".join(f"{k} {v}" for k, v in d.items() if v is not None and not isinstance(v, dict))
    return f"{kind} ({rest})" if rest else kind


def _print_stats(st: Any) -> None:
    from .table import Table

    t = Table(title="parameters", title_justify="left")
    t.add_column("block")
    t.add_column("params", justify="right")
    t.add_column("share", justify="right")
    t.add_column("FLOPs/token", justify="right")
    for block, n in sorted(st.by_block.items(), key=lambda kv: -kv[1]):
        t.add_row(block, f"{n:,}", f"{100 * n / st.params:.1f}%", human(st.flops_by_block.get(block, 0)))
    for block, f in st.flops_by_block.items():
        if block not in st.by_block:
            t.add_row(block, "0", "", human(f))
    t.add_row("[bold]total[/]", f"[bold]{st.params:,}[/]", "100%", f"[bold]{human(st.flops_per_token)}[/]")
    out.print(t)
    layer = ", ".join(f"{k} {v:,}" for k, v in st.per_layer.items())
    out.print(f"per layer: {layer}", highlight=False)
    if st.tuning != "full":
        from ..tuning import trainable_text

        out.print(f"tuning {st.tuning}: {trainable_text(st.trainable, st.params)}, frozen {st.frozen:,}",
                  highlight=False)
    out.print(f"forward FLOPs/token at T={st.seq_len}: {human(st.flops_per_token)} ({st.flops_per_token:,})",
              highlight=False)
    kv = st.kv_bytes_per_token
    out.print(
        f"KV cache per token: {human_bytes(kv['bf16'])} bf16, {human_bytes(kv['fp32'])} fp32"
        + (f"; at T={st.seq_len}: {human_bytes(kv['bf16'] * st.seq_len)} bf16 per sequence" if kv["bf16"] else ""),
        highlight=False,
    )
    w = st.weight_bytes
    out.print(
        f"weights: {human_bytes(w['fp32'])} fp32, {human_bytes(w['bf16'])} bf16, {human_bytes(w['int8'])} int8",
        highlight=False,
    )


# --------------------------------------------------------------------------- schema


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file (what `plmgraph schema` prints)."""
    from ..spec import ModelSpec

    schema = ModelSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "plmgraph model spec"
    return schema


@app.command()
def schema() -> None:
    """Print the JSON Schema of spec files, for editor completion (`plmgraph schema > plmgraph.schema.json`)."""
    out.file.write(json.dumps(json_schema(), indent=2) + "\n")
