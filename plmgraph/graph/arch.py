"""Stage 4, resolve: `ModelSpec` -> `ArchGraph`, the one intermediate representation.

The compiler, the diff, the diagrams and the stats all read this graph and nothing else.

Nodes
-----
Each node id is the dotted path of the torch module the compiler builds for it
(``decoder.layers.3.attn``), so ``f"{node}.{param}"`` is a key of the compiled model's
``state_dict``.  Every node carries:

``kind``    block kind, ``axis/variant``: ``input/tokens``, ``input/pixels``,
            ``embedding/token``, ``embedding/segment``, ``embedding/task_type``,
            ``embedding/patches``, ``embedding/mask_token``, ``embedding/project``,
            ``position/<learned|sinusoidal|glm_2d|rope|alibi|t5_relative|xl_relative>``,
            ``op/sum``, ``norm/<layernorm|rmsnorm>``,
            ``attention/<self|cross|two_stream|segment_memory>``, ``mlp/<dense|gated|moe>``,
            ``residual/add``, ``pool/<cls|mean|last>``, ``head/<lm|mlm|nsp|sop|...>``
``axis``    the first half of ``kind`` (embedding, position, norm, attention, mlp, ...)
``stack``   ``encoder`` / ``decoder`` / ``None`` for model-level nodes
``layer``   layer index inside the stack, or ``None``
``role``    what the node does in its layer or stack (``attn_norm``, ``attn``, ``attn_add``,
            ``cross``, ``mlp``, ``final_norm``, ``token``, ``position``, ...); (stack, layer,
            role) identifies a node across two graphs, which is how the diff aligns them
``params``  ``{name: shape}`` of the tensors this node *owns* (empty when it reuses another
            node's, see ``group``)
``group``   parameter-group key: the id of the node whose parameters this node uses.  Equal
            to the node id unless weights are shared (ALBERT layers share layer 0's group)
``tied_to`` for output heads: the embedding node whose matrix the head reuses, or ``None``
``attrs``   the block's hyper-parameters as a plain dict (``eps``, ``heads``, ``activation``,
            ``mask``, ...); what the diff compares and the diagram prints

Edges are data flow, ``src -> dst``, with ``shape`` (a tuple such as ``("B", "T", 768)``)
and ``role``: ``main``, ``residual`` (skip connection), ``cross`` (encoder output into a
cross-attention), ``position`` (a relative/rotary position feeding attention).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..kinds import KINDS
from ..kinds.position.common import PositionSite
from ..spec import ModelSpec, load_spec
from ..spec.blocks import Block
from ..spec.model import Stack

if TYPE_CHECKING:
    import networkx as nx

Shape = tuple[Any, ...]


class ArchGraph:
    """A resolved architecture: the spec it came from and its block graph.

    `nx` is the graph as a networkx ``DiGraph``. It is built on first use: importing networkx
    costs more than a spec-only command (``validate``, ``show``, ``diff``) spends on everything
    else, and those commands read the nodes through the methods below, which work on the
    builder's node table until `nx` exists and on networkx's node view from then on, so an edit
    made through ``graph.nx`` is what every method sees.
    """

    def __init__(self, spec: ModelSpec, nodes: dict[str, dict[str, Any]],
                 edges: list[tuple[str, str, dict[str, Any]]], facts: dict[str, Any]) -> None:
        self.spec = spec
        self._nodes: Mapping[str, dict[str, Any]] = nodes
        self._edges = edges
        self._facts = facts
        self._nx: nx.DiGraph | None = None

    @property
    def nx(self) -> nx.DiGraph:
        if self._nx is None:
            import networkx as nx

            g = nx.DiGraph()
            g.graph = self._facts
            g.add_nodes_from(self._nodes.items())
            g.add_edges_from(self._edges)
            self._nx, self._nodes = g, g.nodes
        return self._nx

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(node id, attributes)`` for every node, in insertion order."""
        return iter(self._nodes.items())

    def edges(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(source, target, attributes)`` for every edge (data flow), in insertion order."""
        return iter(self._nx.edges(data=True) if self._nx is not None else self._edges)

    @property
    def name(self) -> str:
        return self.spec.name

    def nodes(self, **match: Any) -> list[str]:
        """Node ids whose attributes equal every given value, in insertion order."""
        return [n for n, d in self.items() if all(d.get(k) == v for k, v in match.items())]

    def node(self, node_id: str) -> dict[str, Any]:
        return self._nodes[node_id]

    def owners(self) -> list[str]:
        """Nodes that own parameters (their group is themselves)."""
        return [n for n, d in self.items() if d["group"] == n and d["params"]]

    def param_shapes(self) -> dict[str, Shape]:
        """Every parameter tensor of the compiled model: ``{"node.param": shape}``."""
        return {f"{n}.{p}": s for n in self.owners() for p, s in self.node(n)["params"].items()}

    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes().values())

    def layer_nodes(self, stack: str, layer: int) -> list[str]:
        return self.nodes(stack=stack, layer=layer)

    def stacks(self) -> dict[str, dict[str, Any]]:
        """Each stack's facts, in order: layers, placement, residual kind, embedding dropout, ..."""
        return self._facts["stacks"]


def resolve(spec: Any) -> ArchGraph:
    """Resolve a spec (a `ModelSpec`, zoo name or path) into its `ArchGraph`."""
    spec = load_spec(spec)
    return _Builder(spec).build()


# --------------------------------------------------------------------------- builder


class _Builder:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[tuple[str, str, dict[str, Any]]] = []
        self.facts: dict[str, Any] = {"stacks": {}}
        self.H = spec.sizes.hidden

    # -- helpers ------------------------------------------------------------------

    def add(self, node: str, kind: str, *, stack: str | None = None, layer: int | None = None,
            role: str, params: dict[str, Shape] | None = None, group: str | None = None,
            **attrs: Any) -> str:
        if params is None:  # the kind knows its own parameter shapes
            params = KINDS[kind].params(attrs) if kind in KINDS else {}
        self.nodes[node] = dict(
            kind=kind, axis=kind.split("/")[0], stack=stack, layer=layer, role=role,
            params=dict(params or {}) if (group is None or group == node) else {},
            group=group or node, tied_to=attrs.pop("tied_to", None), attrs=attrs,
        )
        return node

    def edge(self, src: str, dst: str, shape: Shape, role: str = "main") -> None:
        assert src in self.nodes and dst in self.nodes, (src, dst)  # an edge joins two nodes added before it
        self.edges.append((src, dst, {"shape": shape, "role": role}))

    def norm(self, node: str, norm: Any, width: int, *, stack: str | None, layer: int | None,
             role: str, group: str | None = None) -> str:
        attrs = {**norm.model_dump(exclude={"kind"}), "width": width}
        return self.add(node, f"norm/{norm.kind}", stack=stack, layer=layer, role=role, group=group, **attrs)

    def seq(self, stack: str) -> Any:
        if self.spec.embeddings.patches is not None:
            p = self.spec.embeddings.patches
            return p.num_patches + int(p.cls_token)
        return "S" if (self.spec.family == "encoder-decoder" and stack == "encoder") else "T"

    # -- whole model --------------------------------------------------------------

    def build(self) -> ArchGraph:
        spec = self.spec
        outputs: dict[str, str] = {}
        for stack_name, stack in spec.stacks.items():
            self.facts["stacks"][stack_name] = self.stack_facts(stack_name, stack)
            x = self.embeddings(stack_name)
            pos = self.attention_position(stack_name)
            enc_out = outputs.get("encoder") if stack_name == "decoder" else None
            outputs[stack_name] = self.stack(stack_name, stack, x, pos, enc_out)
        self.heads(outputs[list(spec.stacks)[-1]])
        return ArchGraph(spec, self.nodes, self.edges, self.facts)

    def stack_facts(self, name: str, stack: Stack) -> dict[str, Any]:
        """What a stack is as a whole, kept on the graph (``graph.nx.graph["stacks"][name]``): the
        compiler reads its wiring from here and from the edges, never from the spec."""
        spec, pos, p = self.spec, self.spec.position, self.spec.embeddings.patches
        return {
            "layers": stack.layers,
            "placement": stack.block.placement,
            "residual": stack.block.residual.kind,
            "embed_dropout": spec.embeddings.dropout,
            "padding_aware": pos.kind == "learned" and pos.padding_aware,
            "patches": None if p is None else {"length": p.num_patches + int(p.cls_token), "image_size": p.image_size},
        }

    # -- embeddings ---------------------------------------------------------------

    def embeddings(self, stack: str) -> str:
        spec, emb, H = self.spec, self.spec.embeddings, self.H
        E = emb.size
        T = self.seq(stack)
        parts: list[str] = []
        pre = f"{stack}.embed"
        if emb.patches is not None:
            p = emb.patches
            pixels = ("B", p.channels, p.image_size, p.image_size)
            inp = self.add("inputs.pixel_values", "input/pixels", role="pixels", channels=p.channels,
                           image_size=p.image_size, argument="pixel_values", shape=pixels)
            node = self.add(f"{pre}.patches", "embedding/patches", stack=stack, role="patches",
                            patch_size=p.patch_size, image_size=p.image_size, channels=p.channels,
                            cls_token=p.cls_token, dim=E)
            self.edge(inp, node, pixels)
            parts.append(node)
        else:
            decoder_side = spec.family == "encoder-decoder" and stack == "decoder"
            ids = "inputs.decoder_input_ids" if decoder_side else "inputs.input_ids"
            self.add(ids, "input/tokens", stack=stack, role="tokens", argument=ids.split(".")[1], shape=("B", T))
            shared = emb.share_across_stacks or len(spec.stacks) == 1
            tok = "embed.token" if shared else f"{pre}.token"
            if tok not in self.nodes:
                self.add(tok, "embedding/token", stack=None if shared else stack, role="token",
                         vocab=spec.sizes.vocab, dim=E, scale=math.sqrt(H) if emb.scale else None)
            self.edge(ids, tok, ("B", T))
            parts.append(tok)
        if emb.mask_token:
            parts.append(self.add(f"{pre}.mask_token", "embedding/mask_token", stack=stack, role="mask_token",
                                  dim=E))
        if KINDS[f"position/{spec.position.kind}"].adds_to_embeddings:
            parts.append(self.input_position(stack))
        if emb.segments and stack == list(spec.stacks)[0]:
            ids = self.add("inputs.token_type_ids", "input/token_types", stack=stack, role="token_types",
                           argument="token_type_ids", shape=("B", T))
            node = self.add(f"{pre}.segment", "embedding/segment", stack=stack, role="segment",
                            vocab=emb.segments, dim=E)
            self.edge(ids, node, ("B", T))
            parts.append(node)
        if emb.task_types:
            parts.append(self.add(f"{pre}.task_type", "embedding/task_type", stack=stack, role="task_type",
                                  vocab=emb.task_types, dim=E))
        if len(parts) > 1:
            x = self.add(f"{pre}.sum", "op/sum", stack=stack, role="sum", dropout=emb.dropout)
            for p in parts:
                self.edge(p, x, ("B", T, E))
        else:
            x = parts[0]
        if emb.norm:
            n = self.norm(f"{pre}.norm", emb.norm, E, stack=stack, layer=None, role="embed_norm")
            self.edge(x, n, ("B", T, E))
            x = n
        if E != H:
            proj = self.add(f"{pre}.project", "embedding/project", stack=stack, role="project", dim_in=E, dim_out=H)
            self.edge(x, proj, ("B", T, E))
            x = proj
        return x

    def position_site(self, stack: str) -> PositionSite:
        """What a position kind needs to know about `stack` to make its node's attrs."""
        spec = self.spec
        at = spec.stacks[stack].block.attention
        return PositionSite(max_positions=spec.sizes.max_positions, dim=spec.embeddings.size,
                            patches=self.seq(stack) if spec.embeddings.patches is not None else None,
                            heads=spec.sizes.heads, hidden=self.H, head_dim=at.head_dim,
                            bidirectional=at.mask != "causal")

    def input_position(self, stack: str) -> str:
        """The position node of the stack's embeddings; its kind (plmgraph/kinds/position/) gives
        its attrs and shapes."""
        pos = self.spec.position
        k = KINDS[f"position/{pos.kind}"]
        node = self.add(f"{stack}.embed.position", k.name, stack=stack, role="position",
                        **k.node_attrs(pos, self.position_site(stack)))
        self.nodes[node]["shape"] = ("B", self.seq(stack), self.spec.embeddings.size)
        return node

    def attention_position(self, stack: str) -> str | None:
        """The stack's one position node that feeds every attention layer (rotary, ALiBi,
        relative), or None when positions are added to the embeddings or absent. With absolute
        positions in the embeddings it is the spec's `relative_position`, if any (MPNet, DeBERTa)."""
        pos, role = self.spec.position, "position"
        k = KINDS[f"position/{pos.kind}"]
        if not k.feeds_attention and self.spec.relative_position is not None:
            pos, role = self.spec.relative_position, "relative_position"  # beside the embeddings' own
            k = KINDS[f"position/{pos.kind}"]
        if not k.feeds_attention:
            return None
        return self.add(f"{stack}.position", k.name, stack=stack, role=role,
                        **k.node_attrs(pos, self.position_site(stack)))

    # -- stacks and layers --------------------------------------------------------

    def stack(self, name: str, stack: Stack, x: str, pos: str | None, enc_out: str | None) -> str:
        T = self.seq(name)
        shape = ("B", T, self.H)
        layer_pos = self.pattern_positions(name, stack, pos)
        for i in range(stack.layers):
            b = stack.block
            if stack.pattern is not None:  # this layer's window (the attention node's attr) from its entry
                e = stack.pattern[i % len(stack.pattern)]
                b = b.model_copy(update={"attention": b.attention.model_copy(update={"window": e.window})})
            x = self.layer(name, i, b, x, layer_pos[i], enc_out, shape, self.group_layer(stack, i),
                           attn_norm=i > 0 or stack.first_attn_norm)
        if stack.final_norm:
            n = self.norm(f"{name}.final_norm", stack.block.norm, self.H, stack=name, layer=None, role="final_norm")
            self.edge(x, n, shape)
            x = n
        return x

    def pattern_positions(self, name: str, stack: Stack, pos: str | None) -> list[str | None]:
        """The position node feeding each layer's attention: the stack's, or for a pattern entry with its
        own rotary base one ``{stack}.positions.{k}`` node per distinct override (Gemma 3's local layers)."""
        if stack.pattern is None:
            return [pos] * stack.layers
        made: dict[str, str] = {}
        out: list[str | None] = []
        for i in range(stack.layers):
            e = stack.pattern[i % len(stack.pattern)]
            if e.rope is None or pos is None:
                out.append(pos)
                continue
            key = e.rope.model_dump_json()
            if key not in made:
                p = self.spec.position.model_copy(update={"theta": e.rope.theta, "scaling": e.rope.scaling})
                k = KINDS[f"position/{p.kind}"]
                made[key] = self.add(f"{name}.positions.{len(made)}", k.name, stack=name,
                                     role=f"position_{len(made)}", **k.node_attrs(p, self.position_site(name)))
            out.append(made[key])
        return out

    def group_layer(self, stack: Stack, i: int) -> int:
        """The layer whose weights layer `i` uses (itself unless weights are shared)."""
        sh = self.spec.sharing
        if sh.kind == "all":
            return 0
        if sh.kind == "groups":
            per = stack.layers // sh.groups
            return (i // per) * per
        return i

    def layer(self, stack: str, i: int, b: Block, x: str, pos: str | None, enc_out: str | None,
              shape: Shape, owner: int, attn_norm: bool = True) -> str:
        pre = f"{stack}.layers.{i}"

        # The residual add nodes: plain adds, or the residual kind's own (DeepNorm: α·x + f(x)).
        add_kind = "residual/add" if b.residual.kind in ("sequential", "parallel") else f"residual/{b.residual.kind}"
        add_attrs = b.residual.model_dump(exclude={"kind", "shared_norm"})

        def grp(role: str) -> str:
            return f"{stack}.layers.{owner}.{role}"

        def sub(role: str, make: Any, inp: str, norm_in: bool) -> str:
            """One residual sublayer with the block's norm placement; returns the new stream."""
            h = inp
            if b.placement in ("pre", "sandwich") and (attn_norm or role != "attn"):  # ModernBERT's layer 0: none
                h = self.norm(f"{pre}.{role}_norm", b.norm, self.H, stack=stack, layer=i, role=f"{role}_norm",
                              group=grp(f"{role}_norm"))
                self.edge(inp, h, shape)
            f = make(h)
            if b.placement in ("sandwich", "output"):  # output: the only norm, on the sublayer's output (OLMo 2)
                n = self.norm(f"{pre}.{role}_post_norm", b.norm, self.H, stack=stack, layer=i,
                              role=f"{role}_post_norm", group=grp(f"{role}_post_norm"))
                self.edge(f, n, shape)
                f = n
            add = self.add(f"{pre}.{role}_add", add_kind, stack=stack, layer=i, role=f"{role}_add",
                           dropout=b.dropout, **add_attrs)
            self.edge(f, add, shape)
            self.edge(inp, add, shape, role="residual")
            if b.placement == "post":  # DeepNorm too: x = LN(α·x + f(x))
                n = self.norm(f"{pre}.{role}_norm", b.norm, self.H, stack=stack, layer=i, role=f"{role}_norm",
                              group=grp(f"{role}_norm"))
                self.edge(add, n, shape)
                return n
            return add

        def attn(h: str) -> str:
            node = self.attention(f"{pre}.attn", b, stack, i, grp("attn"), self_attn=True)
            self.edge(h, node, shape)
            if pos:
                self.edge(pos, node, (), role="position")
            return node

        def cross(h: str) -> str:
            node = self.attention(f"{pre}.cross", b, stack, i, grp("cross"), self_attn=False)
            self.edge(h, node, shape)
            self.edge(enc_out, node, ("B", "S", self.H), role="cross")
            return node

        def mlp(h: str) -> str:
            node = self.mlp(f"{pre}.mlp", b, stack, i, grp("mlp"))
            self.edge(h, node, shape)
            return node

        if b.residual.kind == "parallel":
            n1 = self.norm(f"{pre}.attn_norm", b.norm, self.H, stack=stack, layer=i, role="attn_norm",
                           group=grp("attn_norm"))
            self.edge(x, n1, shape)
            n2 = n1
            if not b.residual.shared_norm:
                n2 = self.norm(f"{pre}.mlp_norm", b.norm, self.H, stack=stack, layer=i, role="mlp_norm",
                               group=grp("mlp_norm"))
                self.edge(x, n2, shape)
            a, m = attn(n1), mlp(n2)
            add = self.add(f"{pre}.add", "residual/add", stack=stack, layer=i, role="add", dropout=b.dropout)
            for src in (a, m):
                self.edge(src, add, shape)
            self.edge(x, add, shape, role="residual")
            return add
        x = sub("attn", attn, x, True)
        if b.cross_attention:
            x = sub("cross", cross, x, True)
        return sub("mlp", mlp, x, True)

    def attention(self, node: str, b: Block, stack: str, i: int, group: str, *, self_attn: bool) -> str:
        """A self- or cross-attention node; its kind (plmgraph/kinds/attention/) gives the shapes."""
        at = b.attention
        kind = at.kind if self_attn else "cross"
        attrs = at.model_dump(exclude={"kind"})
        attrs["heads"] = self.spec.sizes.heads
        if at.qk_norm:
            attrs["norm"] = b.norm.model_dump()  # the per-head q/k norm is the block's norm
        if self_attn and self.spec.position.kind == "rope":
            attrs["interleaved_rotary"] = self.spec.position.interleaved
        if not self_attn:
            attrs["mask"] = "bidirectional"
            attrs["window"] = None
        return self.add(node, f"attention/{kind}", stack=stack, layer=i, role="attn" if self_attn else "cross",
                        group=group, hidden=self.H, **attrs)

    def mlp(self, node: str, b: Block, stack: str, i: int, group: str) -> str:
        """The MLP node; its kind (plmgraph/kinds/mlp/) gives the shapes. A mixture's expert
        fields are flattened into ``expert_<field>`` attrs."""
        m = b.mlp
        if m.kind == "moe":
            attrs = m.model_dump(exclude={"kind", "expert"})
            attrs.update({f"expert_{k}": v for k, v in m.expert.model_dump().items()})
        else:
            attrs = m.model_dump(exclude={"kind"})
        return self.add(node, f"mlp/{m.kind}", stack=stack, layer=i, role="mlp", group=group, hidden=self.H, **attrs)

    # -- heads --------------------------------------------------------------------

    def heads(self, out: str) -> None:
        spec, H = self.spec, self.H
        last = list(spec.stacks)[-1]
        T = self.seq(last)
        pooled = None
        for head in spec.heads:
            node = f"heads.{head.name}"
            if head.kind in ("lm", "mlm"):
                tok = "embed.token" if "embed.token" in self.nodes else f"{last}.embed.token"
                # the projection's input: a transform maps hidden onto the (tied) embedding width
                width = spec.embeddings.size if (head.tie_embeddings and head.transform is not None) else H
                attrs = head.model_dump(exclude={"kind", "name"})
                self.add(node, f"head/{head.kind}", role=head.name,
                         tied_to=tok if head.tie_embeddings else None, vocab=spec.sizes.vocab, width=width,
                         hidden=H, norm=spec.block.norm.model_dump(), **attrs)
                self.edge(out, node, ("B", T, H))
                continue
            if not head.pooled:  # token classification, question answering: every token
                src, shape = out, ("B", T, H)
            else:
                if pooled is None:
                    p = spec.pooler
                    pooled = self.add("pooler", f"pool/{p.kind}", role="pooler", hidden=H,
                                      **p.model_dump(exclude={"kind"}),
                                      **({"block_norm": spec.block.norm.model_dump()} if p.norm else {}))
                    self.edge(out, pooled, ("B", T, H))
                src, shape = pooled, ("B", H)
            more = head.model_dump(exclude={"kind", "name", "labels", "bias"})  # e.g. the discriminator's activation
            if "transform" in more:  # a per-token classifier's dense -> activation -> norm (ModernBERT)
                if more["transform"] is None:
                    del more["transform"]
                elif more["transform"]["norm"]:
                    more["norm"] = spec.block.norm.model_dump()
            self.add(node, f"head/{head.kind}", role=head.name, labels=head.labels, bias=head.bias, hidden=H, **more)
            self.edge(src, node, shape)
