"""Architecture diagrams with Graphviz: one model, a diff of two, or the whole zoo.

Everything here reads an `ArchGraph` (or an `ArchDiff`) and never imports torch.  The
picture follows the figures in the papers: inputs at the bottom, embeddings, one layer in
full inside a cluster labelled ``× N`` (``layers="all"`` draws every layer), the final
norm and the heads on top; an encoder-decoder shows both stacks side by side with the
cross-attention edges between them.  Main edges carry the tensor shape, skip connections
are dashed, nodes are coloured by block kind and a legend says which colour is which.

``.svg``, ``.png`` and ``.pdf`` are rendered by the Graphviz ``dot`` program; ``.dot``
writes the source and needs no program.  When ``dot`` is missing the source is written
next to the requested file and `GraphvizNotFound` says how to install Graphviz.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import graphviz

from plmgraph.errors import PlmgraphError, UsageError
from plmgraph.graph import ArchGraph, resolve
from plmgraph.graph.diff import ArchDiff, diff, human_count
from plmgraph.kinds import KINDS, kind
from plmgraph.spec.pattern import pattern_words

#: Output formats `save` understands, by file extension.
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot"}
FONT = "Helvetica"

#: Fill colour per block axis (the legend lists the ones a picture uses).
COLORS = {
    "input": "#eeeeee",
    "embedding": "#e4d7f5",
    "position": "#f9d5e5",
    "norm": "#fff2b3",
    "attention": "#ffd8a8",
    "cross": "#ffc078",
    "mlp": "#c5e3f6",
    "op": "#ffffff",
    "residual": "#ffffff",
    "pool": "#d3f0dc",
    "head": "#a9e5bb",
}
LEGEND_NAMES = {
    "input": "input", "embedding": "embedding", "position": "position", "norm": "normalisation",
    "attention": "self-attention", "cross": "cross-attention", "mlp": "MLP", "pool": "pooler", "head": "head",
}
#: Diff picture: fill and label mark per node status.
STATUS = {
    "changed": ("#ffd43b", "~ "),
    "minor": ("#fff3bf", ""),
    "added": ("#8ce99a", "+ "),
    "removed": ("#ffa8a8", "− "),
    None: ("#f8f9fa", ""),
}
FAMILY_COLORS = {"encoder": "#c5e3f6", "decoder": "#ffd8a8", "encoder-decoder": "#d3f0dc"}


class GraphvizNotFound(PlmgraphError):
    """The Graphviz ``dot`` program is needed to render SVG, PNG or PDF and is not installed."""


# ----------------------------------------------------------------------- public API


def draw(spec: Any, path: str | Path, layers: str = "one", overrides: str | list[str] | None = None) -> Path:
    """Draw one architecture to `path` (``.svg``, ``.png``, ``.pdf`` or ``.dot``).

    Args:
        spec: an ArchGraph, ModelSpec, zoo name or spec path.
        path: output file; its extension picks the format.
        layers: ``"one"`` draws one layer inside a ``× N`` cluster, ``"all"`` every layer.
        overrides: ``--override`` edits applied to the spec first.

    Returns:
        The path written.

    Raises:
        UsageError: for an unknown extension or `layers` value.
        GraphvizNotFound: when ``dot`` is needed and missing (the ``.dot`` source is written).
        SpecError: when the spec is invalid.
    """
    path = check_path(path)
    return save(arch_dot(spec, layers=layers, overrides=overrides), path)


def draw_diff(a: Any, b: Any | None = None, path: str | Path = "diff.svg", structure: bool = False) -> Path:
    """Draw two architectures side by side, changed blocks coloured, added/removed marked.

    Args:
        a: an `ArchDiff`, or the first architecture (anything `diff` accepts).
        b: the second architecture (when `a` is not an ArchDiff).
        path: output file (``.svg``, ``.png``, ``.pdf`` or ``.dot``).
        structure: mark only structural changes.
    """
    path = check_path(path)
    delta = a if isinstance(a, ArchDiff) else diff(a, b, structure=structure)
    return save(diff_dot(delta), path)


def draw_zoo(path: str | Path, names: Iterable[str] | None = None) -> Path:
    """Draw the zoo as a family tree: `extends` edges plus dashed edges to nearest relatives."""
    path = check_path(path)
    return save(zoo_dot(names), path)


def check_path(path: str | Path) -> Path:
    """`path` as a Path, or a `UsageError` naming the supported extensions."""
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise UsageError(
            f"cannot write {p.name!r}: unknown output extension {p.suffix or '(none)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return p


def save(dot: graphviz.Digraph, path: str | Path) -> Path:
    """Write `dot` to `path`, rendering with Graphviz unless the extension is ``.dot``.

    Raises:
        UsageError: for an unknown extension.
        GraphvizNotFound: when ``dot`` is not installed; the source is written to ``path.dot``.
    """
    path = check_path(path)
    fmt = FORMATS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        path.write_text(dot.source, encoding="utf-8")
        return path
    if shutil.which("dot") is None:
        return _no_dot(dot, path)
    if fmt == "png":
        dot = dot.copy()
        dot.attr(dpi="150")  # sharp enough for a slide; SVG and PDF are vector anyway
    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        return _no_dot(dot, path)
    path.write_bytes(data)
    return path


def _no_dot(dot: graphviz.Digraph, path: Path) -> Path:
    src = path.with_suffix(".dot")
    src.write_text(dot.source, encoding="utf-8")
    raise GraphvizNotFound(
        f"cannot render {path.name}: the Graphviz `dot` program is not installed (not on PATH). "
        f"Wrote the diagram source to {src} instead. Install Graphviz "
        "(`apt-get install graphviz`, `brew install graphviz` or `conda install graphviz`) and run again, "
        f"or render it yourself with `dot -T{path.suffix[1:]} {src} -o {path}`."
    )


# ------------------------------------------------------------------- one architecture


def arch_dot(spec: Any, layers: str = "one", overrides: str | list[str] | None = None) -> graphviz.Digraph:
    """The Graphviz picture of one architecture (see the module docstring)."""
    if layers not in ("one", "all"):
        raise UsageError(f"layers must be 'one' or 'all', not {layers!r}")
    if overrides:
        from plmgraph.spec import load_spec

        spec = load_spec(spec.spec if isinstance(spec, ArchGraph) else spec, overrides)
    g = spec if isinstance(spec, ArchGraph) else resolve(spec)
    params = human_count(g.num_params())
    dot = _digraph(f"{g.name}", f"{g.name}  ·  {g.spec.family}  ·  {params} parameters")
    used = _ArchDrawer(g, dot, layers=layers).draw()
    dot.node("legend", _block_legend(used), shape="plain", style="solid")
    t = g.spec.tuning
    if t.kind != "full":  # the tuning kind labels itself (plmgraph/kinds/tuning/): what trains
        title, detail = kind(f"tuning/{t.kind}").label(t.model_dump(exclude={"kind"}))
        dot.node("tuning", _html_label(f"tuning: {title}", detail), shape="note", fillcolor="#fff3c4")
    return dot


def _digraph(name: str, title: str) -> graphviz.Digraph:
    dot = graphviz.Digraph(name)
    dot.attr(rankdir="BT", fontname=FONT, fontsize="18", label=_html_title(title), labelloc="t",
             nodesep="0.3", ranksep="0.35", newrank="true", compound="true")
    dot.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled", penwidth="1.2",
             color="#555555", margin="0.12,0.06")
    dot.attr("edge", fontname=FONT, fontsize="8", fontcolor="#666666", color="#444444", arrowsize="0.6")
    return dot


class _ArchDrawer:
    """Adds one ArchGraph's nodes and edges to a Digraph (ids prefixed, for side-by-side diffs)."""

    def __init__(self, g: ArchGraph, dot: graphviz.Digraph, layers: str = "one", prefix: str = "",
                 status: dict[str, str] | None = None) -> None:
        self.g, self.dot, self.layers, self.prefix = g, dot, layers, prefix
        self.status = status  # None: colour by kind; else colour by diff status
        self.used: set[str] = set()
        self.two_stacks = len(g.spec.stacks) == 2

    def id(self, node: str) -> str:
        return self.prefix + node

    def shown(self, node: str) -> bool:
        d = self.g.node(node)
        return self.layers == "all" or d["layer"] is None or d["layer"] == 0

    def rep(self, node: str) -> str:
        """The node that stands for `node` in the picture (layer 0 when one layer is drawn)."""
        d = self.g.node(node)
        if self.layers == "all" or d["layer"] in (None, 0):
            return node
        return node.replace(f".layers.{d['layer']}.", ".layers.0.", 1)

    def draw(self) -> set[str]:
        g = self.g
        by_place: dict[tuple[Any, Any], list[str]] = {}
        for n, d in g.items():
            if self.shown(n):
                by_place.setdefault((d["stack"], d["layer"]), []).append(n)
        outer = self.dot
        for stack_name, stack in g.spec.stacks.items():
            ctx = outer.subgraph(name=f"cluster_{self.prefix}{stack_name}") if self.two_stacks else _Same(outer)
            with ctx as s:
                if self.two_stacks:
                    s.attr(label=_html_title(stack_name.capitalize()), style="rounded,dashed", color="#999999",
                           fontsize="14", labeljust="c")
                for n in by_place.get((stack_name, None), []):
                    if g.node(n)["role"] != "final_norm":
                        self.node(s, n)
                layer_ids = sorted(k[1] for k in by_place if k[0] == stack_name and k[1] is not None)
                for i in layer_ids:
                    with s.subgraph(name=f"cluster_{self.prefix}{stack_name}_layer{i}") as c:
                        c.attr(label=self.layer_label(stack_name, stack.layers, i), style="rounded,filled",
                               fillcolor="#f4f6f8", color="#8899aa", fontsize="13", labeljust="r",
                               labelloc="b")
                        for n in by_place[(stack_name, i)]:
                            self.node(c, n)
                for n in by_place.get((stack_name, None), []):
                    if g.node(n)["role"] == "final_norm":
                        self.node(s, n)
        for n in by_place.get((None, None), []):
            self.node(outer, n)
        self.edges()
        return self.used

    def layer_label(self, stack: str, n: int, i: int) -> str:
        sh = self.g.spec.sharing
        shared = ""
        if sh.kind == "all":
            shared = "one shared set of weights"
        elif sh.kind == "groups":
            shared = f"{sh.groups} shared sets of weights"
        if self.layers == "one":
            pattern = self.g.spec.stacks[stack].pattern
            if pattern is not None:  # layer 0 is drawn; the others vary by the stack's pattern
                shared = "; ".join(x for x in (shared, f"pattern: {pattern_words(pattern)}") if x)
            return _html_title(f"× {n}", shared)
        owner = self.g.node(self.g.node(next(iter(self.g.layer_nodes(stack, i))))["group"])["layer"]
        note = "" if owner == i else f"weights of layer {owner}"
        return _html_title(f"layer {i}", note)

    def node(self, sub: graphviz.Digraph, n: str) -> None:
        d = self.g.node(n)
        axis = "cross" if d["kind"] == "attention/cross" else d["axis"]
        title, detail = node_label(self.g, n)
        attrs: dict[str, str] = {}
        if d["axis"] in ("residual", "op"):  # a small circle: "+", or the residual kind's own sign
            label = title if d["axis"] == "residual" else "+"
            attrs = dict(shape="circle", width="0.28", height="0.28", fixedsize="true" if len(label) == 1 else "false",
                         margin="0", fontsize="14" if len(label) == 1 else "10", style="filled")
        else:
            label = _html_label(title, detail)
        if d["axis"] == "input":
            attrs["shape"] = "box"
            attrs["style"] = "rounded,filled,dashed"
        if self.status is None:
            attrs["fillcolor"] = COLORS.get(axis, "#ffffff")
            self.used.add(axis)
        else:
            st = self.status.get(n)
            fill, mark = STATUS[st]
            attrs["fillcolor"] = fill
            if st is not None and st != "minor":
                attrs["penwidth"] = "2"
                if label != "+":
                    label = _html_label(mark + title, detail)
            if st == "removed":
                attrs["style"] = attrs.get("style", "rounded,filled") + ",dashed"
        sub.node(self.id(n), label, **attrs)

    def edges(self) -> None:
        g, seen = self.g, set()
        for u, v, e in g.edges():
            du, dv = g.node(u), g.node(v)
            if (self.layers == "one" and du["layer"] is not None and dv["layer"] is not None
                    and du["layer"] != dv["layer"]):
                continue  # layer k -> layer k+1 is the "× N" loop
            ru, rv = self.rep(u), self.rep(v)
            if ru == rv or (ru, rv) in seen:
                continue
            seen.add((ru, rv))
            role = e.get("role", "main")
            attrs: dict[str, str] = {}
            if role == "residual":
                attrs = dict(style="dashed", color="#888888", arrowhead="normal")
            elif role == "position":
                attrs = dict(style="dotted", color="#c2255c", label=" " + _position_edge(du))
                attrs["fontcolor"] = "#c2255c"
            elif role == "cross":
                attrs = dict(color="#e8590c", penwidth="1.6", label=" " + shape_text(e.get("shape")),
                             fontcolor="#e8590c", constraint="false" if self.layers == "all" else "true")
            else:
                attrs["label"] = " " + shape_text(e.get("shape"))
            self.dot.edge(self.id(ru), self.id(rv), **attrs)
        for n, d in g.items():
            if d["tied_to"] and self.shown(n):
                self.dot.edge(self.id(d["tied_to"]), self.id(n), style="dotted", color="#2b8a3e", dir="none",
                              constraint="false", label=" tied", fontcolor="#2b8a3e")


class _Same:
    """A context manager that yields the graph itself (single-stack models draw no stack cluster)."""

    def __init__(self, dot: graphviz.Digraph) -> None:
        self.dot = dot

    def __enter__(self) -> graphviz.Digraph:
        return self.dot

    def __exit__(self, *exc: object) -> None:
        return None


# ----------------------------------------------------------------------------- labels


def shape_text(shape: Any) -> str:
    """``("B", "T", 768)`` -> ``B×T×768``."""
    if not shape:
        return ""
    return "×".join(str(s) for s in shape)


def _position_edge(d: dict[str, Any]) -> str:
    """What a position node does to the attention it feeds ("rotate q, k"): its kind's `edge_label`."""
    return KINDS[d["kind"]].edge_label


def node_label(g: ArchGraph, n: str) -> tuple[str, str]:
    """(title, detail) for a node: ("Multi-head attention", "12 heads · d=64 · causal")."""
    d = g.node(n)
    return kind(d["kind"]).label(d["attrs"])  # each kind labels itself (plmgraph/kinds/<axis>/)


def _html_label(title: str, detail: str = "") -> str:
    t = f"<B>{html.escape(title)}</B>"
    if detail:
        t += f'<BR/><FONT POINT-SIZE="9" COLOR="#444444">{html.escape(detail)}</FONT>'
    return f"<{t}>"


def _html_title(title: str, detail: str = "") -> str:
    t = f"<B>{html.escape(title)}</B>"
    if detail:
        t += f'<BR/><FONT POINT-SIZE="10">{html.escape(detail)}</FONT>'
    return f"<{t}>"


def _legend(rows: list[tuple[str, str, str]], title: str = "blocks") -> str:
    """An HTML-table legend; each row is (fill colour or "", symbol, text)."""
    cells = []
    for color, symbol, text in rows:
        swatch = (f'<TD BGCOLOR="{color}" WIDTH="22" BORDER="1">{html.escape(symbol)}</TD>' if color
                  else f'<TD WIDTH="22">{html.escape(symbol)}</TD>')
        cells.append(f'<TR>{swatch}<TD ALIGN="LEFT"><FONT POINT-SIZE="10">{html.escape(text)}</FONT></TD></TR>')
    return (f'<<TABLE BORDER="1" COLOR="#bbbbbb" BGCOLOR="white" CELLBORDER="0" CELLSPACING="3" CELLPADDING="2">'
            f'<TR><TD COLSPAN="2"><B>{html.escape(title)}</B></TD></TR>{"".join(cells)}</TABLE>>')


def _block_legend(used: set[str]) -> str:
    rows = [(COLORS[k], "", LEGEND_NAMES[k]) for k in COLORS if k in used and k in LEGEND_NAMES]
    rows += [("", "+", "residual add / sum"), ("", "⇢", "skip connection (dashed)")]
    return _legend(rows)


# ------------------------------------------------------------------------------ diff


def diff_dot(delta: ArchDiff, max_lines: int = 24) -> graphviz.Digraph:
    """Both architectures of `delta` side by side; changed, added and removed blocks marked."""
    a, b = delta.a, delta.b
    cost = delta.cost()["params"]
    dot = _digraph(
        "diff",
        f"{a.name} → {b.name}  ·  {len(delta.changes)} changes ({len(delta.structural)} structural)  ·  "
        f"{human_count(cost['a'])} → {human_count(cost['b'])} parameters",
    )
    dot.attr(nodesep="0.25")
    for side, g, status in (("a", a, delta.nodes_a), ("b", b, delta.nodes_b)):
        with dot.subgraph(name=f"cluster_side_{side}") as c:
            c.attr(label=_html_title(g.name, f"{g.spec.family} · {human_count(g.num_params())}"),
                   style="rounded", color="#666666", fontsize="16")
            _ArchDrawer(g, c, layers="one", prefix=f"{side}__", status=status).draw()
    lines = delta.lines()
    shown = lines[:max_lines] + ([f"… {len(lines) - max_lines} more"] if len(lines) > max_lines else [])
    rows = "".join(f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="10">{html.escape(x)}</FONT></TD></TR>' for x in shown)
    dot.node("changes", f'<<TABLE BORDER="1" COLOR="#bbbbbb" CELLBORDER="0" CELLSPACING="1">'
                        f'<TR><TD ALIGN="LEFT"><B>changes</B></TD></TR>{rows or "<TR><TD>none</TD></TR>"}</TABLE>>',
             shape="plain", style="solid")
    rows = [(STATUS[k][0], STATUS[k][1].strip(), text) for k, text in (
        ("changed", "changed (structure)"), ("minor", "changed (sizes, hyper-parameters)"), ("added", "added"),
        ("removed", "removed"), (None, "same"))]
    dot.node("legend", _legend(rows, title="diff"), shape="plain", style="solid")
    return dot


# ------------------------------------------------------------------------------- zoo


def zoo_dot(names: Iterable[str] | None = None) -> graphviz.Digraph:
    """The zoo as a family tree.

    Every spec is a node (coloured by family); a solid edge goes from each spec to the
    specs that ``extends`` it, and a dashed edge joins each spec to its nearest relative
    by `diff` distance when no ``extends`` edge already joins them.
    """
    from plmgraph.graph.diff import distance
    from plmgraph.spec import load_spec, zoo_names

    names = list(names) if names is not None else zoo_names()
    specs = {n: load_spec(n) for n in names}
    graphs = {n: resolve(s) for n, s in specs.items()}
    dot = graphviz.Digraph("zoo")
    dot.attr(rankdir="TB", fontname=FONT, fontsize="18", labelloc="t", nodesep="0.35", ranksep="0.6",
             label=_html_title("plmgraph zoo", "solid: extends · dashed: nearest relative by diff distance"))
    dot.attr("node", fontname=FONT, shape="box", style="rounded,filled", fontsize="11", color="#555555")
    dot.attr("edge", fontname=FONT, fontsize="9", fontcolor="#555555", arrowsize="0.7")
    for n, s in specs.items():
        dot.node(n, _html_label(n, f"{s.family} · {human_count(graphs[n].num_params())}"),
                 fillcolor=FAMILY_COLORS[s.family])
    linked: set[frozenset[str]] = set()
    for n in specs:
        for parent in _parents(n):
            if parent in specs:
                dot.edge(parent, n, penwidth="1.6")
                linked.add(frozenset((parent, n)))
    for n in names:
        others = [(distance(graphs[n], graphs[m]), m) for m in names if m != n]
        if not others:
            continue
        dist, best = min(others)
        pair = frozenset((n, best))
        if pair in linked:
            continue
        linked.add(pair)
        dot.edge(best, n, style="dashed", color="#868e96", dir="none", label=f" {dist:.1f}")
    fam = [f for f in FAMILY_COLORS if any(s.family == f for s in specs.values())]
    dot.node("legend", _legend([(FAMILY_COLORS[f], "", f) for f in fam], title="family"), shape="plain",
             style="solid")
    return dot


def _parents(name: str) -> list[str]:
    """The direct `extends` parents of a zoo spec, by name (from the inheritance DAG)."""
    from plmgraph.spec import find_spec, load_merged

    g = load_merged(name).graph
    return [Path(p).stem for p in g.successors(find_spec(name))]


__all__ = ["FORMATS", "GraphvizNotFound", "arch_dot", "check_path", "diff_dot", "draw", "draw_diff", "draw_zoo",
           "node_label", "save", "zoo_dot"]
