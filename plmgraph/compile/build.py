"""Stage 5, compile: `ArchGraph` -> `PLMModel`.

The graph is read once, here, into ordinary modules: each parameter-owning node becomes the
module its kind's registered factory makes (see `registry`), placed at the module path
equal to its node id; a node whose ``group`` names another node reuses that node's module
object (ALBERT), and a tied head reads the embedding it is ``tied_to``.  The straight list
of stages:

    resolve       spec / name / path -> ArchGraph (unless given one)
    tuning plan   the spec's tuning kind plans what it adds (bad options fail here, before any work)
    construct     modules on the meta device (instant, no memory)
    check names   named parameters == graph.param_shapes(), or a compiler bug is reported
    cast, place   dtype, then ``to_empty(device)`` and `PLMModel.init_weights`
    tuning        `plmgraph.tuning.apply`: attach the tuning kind's modules, freeze the rest
                  (``model.tuning`` is the plan; ``tuning: full`` trains everything)
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..errors import ResourceError
from ..graph.arch import ArchGraph, resolve
from ..kinds import kind as block_kind
from .block import Block, Stack
from .embedding import StackEmbeddings
from .model import PLMModel
from .registry import Node, NotSupportedError, make
from .relative import RelativeBlock, RelativeStack

#: The sublayer roles of a layer, in the order a Block is given them.
LAYER_ROLES = ("attn_norm", "attn", "attn_post_norm", "attn_add", "cross_norm", "cross", "cross_post_norm",
               "cross_add", "mlp_norm", "mlp", "mlp_post_norm", "mlp_add", "add")
EMBED_ROLES = ("patches", "position", "segment", "task_type", "mask_token", "norm", "project")


def build(spec_or_graph: Any, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
          seed: int | None = None) -> PLMModel:
    """Compile a model.

    Args:
        spec_or_graph: a `ModelSpec`, an `ArchGraph`, a zoo name or a spec path.
        device: where the parameters live; ``"meta"`` builds shapes only (instant, no init).
            Default: CPU.
        dtype: parameter dtype (``torch.bfloat16`` or ``"bfloat16"``); default float32.
        seed: seed for the random initialisation (default: torch's global generator).

    Returns:
        The `PLMModel`; ``model.spec`` and ``model.graph`` are what it was built from.

    Raises:
        SpecError: when a name or path does not give a valid spec.
        NotSupportedError: when the graph uses a block kind without a torch implementation.
        NotCompiledYet: when the spec uses a kind that is known but not compiled yet (a tuning
            other than ``full``, a MoE load-balancing loss).
    """
    graph = spec_or_graph if isinstance(spec_or_graph, ArchGraph) else resolve(spec_or_graph)
    check_tuning(graph)
    from ..tuning import apply as apply_tuning
    with torch.device("meta"):
        model = _Compiler(graph).model()
    check_names(model, graph)
    check_structure(model, graph)
    if dtype is not None:
        model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    device = torch.device(device if device is not None else "cpu")
    if device.type != "meta":
        check_memory(model, graph, device)
        try:
            model.to_empty(device=device)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if "memory" not in str(e).lower():
                raise
            raise ResourceError(f"{graph.name}: could not allocate its parameters on {device}: "
                                f"{str(e).splitlines()[0][:200]}") from None
        model.init_weights(seed)
    apply_tuning(model, graph, seed=seed)
    return model


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on `device` (CPU: the kernel's MemAvailable), or None when unknown."""
    if device.type == "cuda":
        try:
            return torch.cuda.mem_get_info(device)[0]
        except (RuntimeError, AssertionError):
            return None
    if device.type == "cpu":
        try:
            for line in open("/proc/meminfo", encoding="ascii"):
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def check_memory(model: nn.Module, graph: ArchGraph, device: torch.device) -> None:
    """Refuse, before allocating anything, a model whose parameters and buffers do not fit in the
    memory `device` has free (a 10**12-token vocabulary, LLaMA-2 7B in fp32 on a laptop)."""
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}.values()
    need = sum(t.numel() * t.element_size() for t in tensors)
    free = available_memory(device)
    if free is not None and need > free:
        dtype = next(iter(model.parameters()), torch.empty(0)).dtype
        raise ResourceError(
            f"{graph.name}: building on {device} needs {_gib(need)} for {graph.num_params():,} parameters in "
            f"{str(dtype).replace('torch.', '')}, but only {_gib(free)} is free; build on the meta device "
            "(--device meta), in a smaller dtype (--dtype bfloat16), or on a larger machine"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def check_tuning(graph: ArchGraph) -> None:
    """Ask the spec's tuning kind (plmgraph/kinds/tuning/) for its plan before anything is built: bad
    options raise `TuningError`, a kind not compiled yet `NotCompiledYet`, rather than silently
    training every parameter. `plmgraph.tuning.apply` attaches it after the base is built."""
    from ..tuning import plan

    plan(graph)


def check_names(model: nn.Module, graph: ArchGraph) -> None:
    """The naming invariant: the model's parameters are exactly the graph's, name and shape."""
    got = {k: tuple(p.shape) for k, p in model.named_parameters()}
    want = {k: tuple(s) for k, s in graph.param_shapes().items()}
    if got != want:
        missing = sorted(set(want) - set(got))[:5]
        extra = sorted(set(got) - set(want))[:5]
        shapes = [f"{k}: {got[k]} != {want[k]}" for k in sorted(set(got) & set(want)) if got[k] != want[k]][:5]
        raise AssertionError(f"compiler bug for {graph.name}: parameters differ from the graph; "
                             f"missing {missing}, extra {extra}, wrong shapes {shapes}")


def check_structure(model: nn.Module, graph: ArchGraph) -> None:
    """The wiring invariant: the module's structure is the graph's, not only its parameter names.

    Every node that owns weights or is a residual add is a submodule at its id (shared layers:
    at their owner's); and each layer's wiring, read back from the graph's edges, is the one its
    `Block` runs: which norm feeds which sublayer (pre) or follows which add (post), a
    post-sublayer norm (sandwich), cross-attention fed by the encoder's output, parallel sublayers.
    """
    problems: list[str] = []
    g = graph.nx
    for nid, d in g.nodes(data=True):
        if d["group"] == nid and (d["params"] or d["axis"] == "residual") and d["layer"] in (None, _owner(graph, nid)):
            try:
                model.get_submodule(nid)
            except AttributeError:
                problems.append(f"{nid} ({d['kind']}) has no module")
    for name, stack in zip(model.stack_names, model.stacks(), strict=True):
        declared = graph.stacks()[name]["placement"]
        for key, block in stack.layers.items():
            pre = f"{name}.layers.{key}"
            has = {r for r in LAYER_ROLES if f"{pre}.{r}" in g}
            if block.parallel != ("add" in has):
                problems.append(f"{pre}: parallel is {block.parallel} in the module, not in the graph")
            fed = "cross" in has and any(e["role"] == "cross" for *_, e in g.in_edges(f"{pre}.cross", data=True))
            if block.has_cross != ("cross" in has) or ("cross" in has and not fed):
                problems.append(f"{pre}: cross-attention differs between module and graph")
            if block.parallel:
                continue
            for sub in ("attn", "cross", "mlp") if "cross" in has else ("attn", "mlp"):
                preds = {g.nodes[p]["role"] for p in g.predecessors(f"{pre}.{sub}")}
                succs = {g.nodes[s]["role"] for s in g.successors(f"{pre}.{sub}_add")}
                wired = ("post" if f"{sub}_norm" in succs else
                         ("sandwich" if f"{sub}_norm" in preds else "output") if f"{sub}_post_norm" in has else
                         "pre" if f"{sub}_norm" in preds else
                         "pre" if f"{sub}_norm" not in has and block.placement == "pre" else "?")  # ModernBERT layer 0
                if not wired == block.placement == declared:
                    problems.append(f"{pre}.{sub}: the graph wires {wired}-norm and declares {declared}, "
                                    f"the module runs {block.placement}")
    if problems:
        raise AssertionError(f"compiler bug for {graph.name}: module structure differs from the graph: "
                             + "; ".join(problems[:5]))


def _owner(graph: ArchGraph, nid: str) -> int | None:
    """The layer whose module a layer node lives in (itself unless its layer shares weights)."""
    d = graph.node(nid)
    if d["layer"] is None:
        return None
    stack_layer = f"{d['stack']}.layers.{d['layer']}"
    attn = graph.node(f"{stack_layer}.attn")
    return graph.node(attn["group"])["layer"]


class _Compiler:
    def __init__(self, graph: ArchGraph) -> None:
        self.graph, self.spec = graph, graph.spec
        self.built: dict[str, nn.Module] = {}  # parameter group (owner node id) -> module

    def has(self, node_id: str) -> bool:
        return node_id in self.graph.nx

    def module(self, node_id: str, **extra: Any) -> nn.Module:
        """The module for `node_id`: its group owner's, built once."""
        group = self.graph.node(node_id)["group"]
        if group not in self.built:
            d = self.graph.node(group)
            node = Node(group, d["kind"], {**d["attrs"], **extra}, d["params"], d["stack"], d["layer"])
            self.built[group] = make(node)
        return self.built[group]

    # ------------------------------------------------------------------ model

    def model(self) -> PLMModel:
        g = self.graph
        embed = nn.ModuleDict({"token": self.module("embed.token")}) if self.has("embed.token") else None
        stacks = {name: self.stack(name, facts) for name, facts in g.stacks().items()}
        pooler = self.module("pooler") if self.has("pooler") else None
        heads, pooled = {}, set()
        for nid in g.nodes(axis="head"):
            name, tied = g.node(nid)["role"], g.node(nid)["tied_to"]
            heads[name] = self.module(nid, tied_module=self.built[tied] if tied else None)
            if any(g.node(src)["axis"] == "pool" for src in g.nx.predecessors(nid)):
                pooled.add(name)
        return PLMModel(spec=self.spec, graph=g, embed=embed, stacks=stacks, pooler=pooler, heads=heads,
                        pooled_heads=pooled)

    # ------------------------------------------------------------------ stacks

    def stack(self, name: str, facts: dict[str, Any]) -> Stack:
        attn = self.graph.node(f"{name}.layers.0.attn")  # every layer of a stack attends alike
        a, relative = attn["attrs"], getattr(block_kind(attn["kind"]), "relative", False)
        if a["mask"] == "prefix" and len(self.graph.stacks()) > 1:
            raise NotSupportedError(f"{name}: the 'prefix' attention mask is compiled for one-stack models "
                                    f"(GLM), not for encoder-decoders")
        pre = f"{name}.embed"
        own = self.has(f"{pre}.token")
        token = self.module(f"{pre}.token") if own else (self.built.get("embed.token"))
        parts = {role: self.module(f"{pre}.{role}") for role in EMBED_ROLES if self.has(f"{pre}.{role}")}
        embed = StackEmbeddings(token=token, own_token=own, parts=parts, dropout=facts["embed_dropout"],
                                padding_aware=facts["padding_aware"])
        if facts["patches"] is not None:
            embed.patches_len = facts["patches"]["length"]
            embed.image_size = facts["patches"]["image_size"]
        position = None
        if self.has(f"{name}.position"):
            position = self.module(f"{name}.position")  # its attrs say all it needs (bidirectional, ...)
        layers: dict[str, Block] = {}
        schedule: list[str] = []
        windows: list[int | None] = []  # each layer's sliding window (a stack's pattern varies it)
        sources: list[str] = []  # each layer's position node ("" for the stack's own, or none)
        extra: dict[str, nn.Module] = {}  # a pattern's own rotary bases: {stack}.positions.<k>
        for i in range(facts["layers"]):
            owner = self.owner_layer(name, i)
            if owner not in layers:
                layers[owner] = self.block(name, i, facts["placement"], relative)
            schedule.append(owner)
            la = self.graph.node(f"{name}.layers.{i}.attn")
            windows.append(la["attrs"].get("window"))
            src = next((u for u in self.graph.nx.predecessors(f"{name}.layers.{i}.attn")
                        if self.graph.node(u)["axis"] == "position"), None)
            key = "" if src in (None, f"{name}.position") else src.rsplit(".", 1)[1]
            if key and key not in extra:
                extra[key] = self.module(src)
            sources.append(key)
        final = self.module(f"{name}.final_norm") if self.has(f"{name}.final_norm") else None
        causal = a["mask"] == "causal"
        if relative:  # Transformer-XL / XLNet: memory, two streams (see `relative`)
            return RelativeStack(embed=embed, layers=layers, schedule=schedule, position=position, final_norm=final,
                                 causal=causal, memory=a["memory"], two_stream=attn["kind"] == "attention/two_stream")
        if relative and (len(set(windows)) > 1 or extra):
            raise NotSupportedError(f"{name}: a per-layer pattern with {attn['kind']} attention is not supported")
        return Stack(embed=embed, layers=layers, schedule=schedule, position=position, final_norm=final,
                     causal=causal, window=a["window"], prefix=a["mask"] == "prefix",
                     windows=windows if len(set(windows)) > 1 else None, positions=extra or None,
                     layer_positions=sources if extra else None)

    def owner_layer(self, stack: str, i: int) -> str:
        """The layer whose block layer `i` runs (itself, or the owner of its shared weights)."""
        pre = f"{stack}.layers.{i}."
        owner = str(self.graph.node(self.graph.node(pre + "attn")["group"])["layer"])
        for nid in self.graph.layer_nodes(stack, i):
            d = self.graph.node(nid)
            if d["role"] not in LAYER_ROLES or (not d["params"] and d["axis"] == "residual"):
                continue  # residual adds own nothing to share
            if d["group"] != nid.replace(pre, f"{stack}.layers.{owner}.", 1):
                raise NotSupportedError(f"{nid}: sharing only part of a layer (group {d['group']!r}) is not "
                                        f"supported; the compiler shares whole layers (layer {i} uses layer {owner})")
        return owner

    def block(self, stack: str, i: int, placement: str, relative: bool) -> Block:
        pre = f"{stack}.layers.{i}"
        mods = {role: self.module(f"{pre}.{role}") for role in LAYER_ROLES if self.has(f"{pre}.{role}")}
        add = self.graph.node(f"{pre}.add" if self.has(f"{pre}.add") else f"{pre}.attn_add")
        cls = RelativeBlock if relative else Block
        return cls(placement=placement, dropout=add["attrs"]["dropout"], **mods)
