'''Assemble the kinds' pieces into one nanoGPT-style file: `eject(graph) -> str`.

The file reads top to bottom: the config dataclass with the spec's values, the small modules
(norm, positions, attention, MLP), one layer (`Block`), the embeddings and a stack of layers
(`Stack`), the heads, the model last, and a smoke test. Every module the file builds sits at
the path of its graph node, so its ``state_dict`` keys are the compiled model's and the same
safetensors load into both. Each kind writes its own source (its ``eject`` facet, see
`pieces`); this module writes only the wiring the graph's stack facts describe (norm
placement, masks, the layer schedule of shared layers).

Torch-free: it writes text.
'''

from __future__ import annotations

from typing import Any

from ..graph.arch import ArchGraph
from ..kinds import kind as block_kind
from ..kinds.base import MissingFacet, NotCompiledYet
from .pieces import Piece

HEADER = '''"""{title}

{summary}
{source}
One file, read top to bottom: config, norm, positions, attention, MLP, one layer, the
stack, the heads, the model. It imports only torch{extra}; ejected by plmgraph from the
spec {name!r}. Parameter names are plmgraph's, so a plmgraph model.safetensors loads
with `load_state_dict`. Forward returns a dict: the last hidden state and each head's
output by name.
"""

{imports}
'''


def piece(graph: ArchGraph, nid: str) -> Piece:
    """The piece a node's kind writes for it; a kind without `eject` refuses, naming itself."""
    d = graph.node(nid)
    try:
        return block_kind(d["kind"]).eject(d["attrs"])
    except NotCompiledYet:
        raise
    except MissingFacet:
        raise NotCompiledYet(f"block kind {d['kind']!r} ({nid}) cannot be ejected yet: it writes no source "
                             f"(no eject facet); `plmgraph build` compiles it") from None


class _Writer:
    def __init__(self, graph: ArchGraph, weights: str | None) -> None:
        self.g, self.spec, self.weights = graph, graph.spec, weights
        #: The file's definitions by section, in reading order: small pieces first.
        self.defs: dict[str, list[str]] = {k: [] for k in ("norm", "position", "attention", "mlp", "block",
                                                            "embed", "stack", "head")}
        self.config: dict[str, Any] = {}
        self.stacks = graph.stacks()
        self.encdec = len(self.stacks) > 1
        self.E, self.H = self.spec.embeddings.size, self.spec.sizes.hidden
        attn_kinds = {graph.node(n)["kind"] for n in graph.nodes(role="attn")}
        #: Transformer-XL / XLNet: relative attention over a segment memory (`relative_block`).
        self.relative = bool(attn_kinds & {"attention/segment_memory", "attention/two_stream"})
        self.two_stream = "attention/two_stream" in attn_kinds

    # ------------------------------------------------------------------ helpers

    def has(self, nid: str) -> bool:
        return nid in self.g.nx

    def use(self, p: Piece, width: str = "cfg.hidden", section: str = "head", **fill: str) -> str:
        """Record a piece's definitions (in `section` of the file) and config; return its
        constructor expression."""
        for code in map(self.dim, p.defs):
            if all(code not in defs for defs in self.defs.values()):
                self.defs[section].append(code)
        for k, v in p.config.items():
            if k in self.config and self.config[k] != v:
                raise NotCompiledYet(f"cannot eject {self.spec.name!r}: config field {k} has two values "
                                     f"({self.config[k]!r} and {v!r}); stacks or blocks that differ are not "
                                     f"written yet")
            self.config[k] = v
        return self.dim(p.make.replace("{width}", width).format(**fill) if fill else p.make.replace("{width}", width))

    def dim(self, text: str) -> str:
        return text if self.E != self.H else text.replace("cfg.embed_dim", "cfg.hidden")

    def same(self, nids: list[str]) -> str:
        """The node of `nids` whose piece every other one equals (every layer alike)."""
        first = piece(self.g, nids[0])
        for nid in nids[1:]:
            if piece(self.g, nid) != first:
                raise NotCompiledYet(f"cannot eject {self.spec.name!r}: {nid} differs from {nids[0]}; "
                                     f"layers or stacks that differ are not written yet")
        return nids[0]

    def role(self, role: str, stacks: list[str] | None = None) -> str | None:
        """The one node every layer of the stacks has for `role`, or None when none has it."""
        nids = [n for n in self.g.nodes(role=role) if self.g.node(n)["layer"] is not None
                and (stacks is None or self.g.node(n)["stack"] in stacks)]
        return self.same(nids) if nids else None

    # ------------------------------------------------------------------ refusals

    def check(self) -> None:
        first = ("attention", "position", "mlp", "norm")  # the kinds that say most about a refusal
        nodes = sorted(self.g.nx.nodes(data=True), key=lambda n: first.index(n[1]["axis"])
                       if n[1]["axis"] in first else len(first))
        for nid, d in nodes:
            if d["axis"] not in ("input", "op", "residual"):
                piece(self.g, nid)  # every kind with a module writes its source, or refuses naming itself
        for name, facts in self.stacks.items():
            if facts["residual"] not in ("sequential", "parallel", "deepnorm"):
                raise NotCompiledYet(f"block kind 'residual/{facts['residual']}' cannot be ejected yet "
                                     f"({name}: only sequential sublayers are written)")
            if self.has(f"{name}.embed.token"):
                raise NotCompiledYet(f"cannot eject {self.spec.name!r}: a token table per stack is not written yet")
        if self.encdec and len({f["placement"] for f in self.stacks.values()}) > 1:
            raise NotCompiledYet(f"cannot eject {self.spec.name!r}: stacks with different placements")

    # ------------------------------------------------------------------ pieces

    def block(self) -> str:
        placement = next(iter(self.stacks.values()))["placement"]
        s = list(self.stacks)
        output = placement == "output"  # x + norm(f(x)): only the norms on the sublayers' outputs (OLMo 2)
        norm = self.use(piece(self.g, self.role("attn_post_norm" if output else "attn_norm")), section="norm")
        attn_id = self.role("attn")
        attn = self.use(piece(self.g, attn_id), section="attention")
        mlp = self.use(piece(self.g, self.role("mlp")), section="mlp")
        # the stack hands the layer a pair: rotary cos/sin, or DeBERTa's (relative table, index)
        rotary = "interleaved_rotary" in self.g.node(attn_id)["attrs"] or \
            self.g.node(attn_id)["kind"] == "attention/disentangled"
        post_norm = self.role("attn_post_norm") is not None
        cross = self.role("cross", s) is not None
        parallel = self.has(f"{s[0]}.layers.0.add")
        drop = self.g.node(f"{s[0]}.layers.0.{'add' if parallel else 'attn_add'}")["attrs"]["dropout"]
        if drop:
            self.config["dropout"] = drop
        d = (lambda y: f"self.drop({y})") if drop else (lambda y: y)
        add = self.g.node(f"{s[0]}.layers.0.{'add' if parallel else 'attn_add'}")
        deepnorm = add["kind"] == "residual/deepnorm"
        if deepnorm:
            self.config["deepnorm_alpha"] = add["attrs"]["alpha"]
        init = ([] if output else [f"self.attn_norm = {norm}"]) + [f"self.attn = {attn}"]
        if post_norm:
            init.append(f"self.attn_post_norm = {norm}")
        if cross:
            cattn = self.use(piece(self.g, self.role("cross")), section="attention")
            init += ["if cross:", *([] if output else [f"    self.cross_norm = {norm}"]), f"    self.cross = {cattn}"]
            if post_norm:
                init.append(f"    self.cross_post_norm = {norm}")
        shared_norm = parallel and self.role("mlp_norm") is None
        init += [f"self.mlp = {mlp}"] if shared_norm or output else [f"self.mlp_norm = {norm}", f"self.mlp = {mlp}"]
        if post_norm:
            init.append(f"self.mlp_post_norm = {norm}")
        if drop:
            init.append("self.drop = nn.Dropout(cfg.dropout)")
        if deepnorm:
            init.append("self.alpha = cfg.deepnorm_alpha  # DeepNorm (Wang et al. 2022): x = LN(α·x + f(x))")
        args = ["x: torch.Tensor", "mask: torch.Tensor"]
        attn_args = "mask"
        if rotary:
            args.append("rotary: tuple[torch.Tensor, torch.Tensor]")
            attn_args += ", rotary"
        if cross:
            args += ["memory: torch.Tensor | None = None", "memory_mask: torch.Tensor | None = None"]

        def sub(name: str, call: str) -> str:
            if placement == "post":
                scaled = "self.alpha * x" if deepnorm else "x"
                return f"x = self.{name}_norm({scaled} + {d(call.format(h='x'))})"
            y = call.format(h="x" if output else f"self.{name}_norm(x)")
            if post_norm:
                y = f"self.{name}_post_norm({y})"
            return f"x = x + {d(y)}"

        body = [sub("attn", "self.attn({h}, " + attn_args + ")")]
        if parallel:  # GPT-J / GPT-NeoX: both sublayers read the same input
            m = "h" if shared_norm else "self.mlp_norm(x)"
            body = ["h = self.attn_norm(x)", f"a = {d('self.attn(h, ' + attn_args + ')')}",
                    f"m = {d(f'self.mlp({m})')}", "return x + a + m"]
        elif cross:
            body += ["if memory is not None:", "    " + sub("cross", "self.cross({h}, memory, memory_mask)")]
        if not parallel:
            body += [sub("mlp", "self.mlp({h})"), "return x"]
        words = {"parallel": "parallel: x = x + attn(norm(x)) + mlp(norm'(x)) (GPT-J, GPT-NeoX)",
                 "pre": "pre-norm: x = x + f(norm(x)) (GPT-2, LLaMA; Xiong et al. 2020)",
                 "post": "post-norm: x = norm(x + f(x)) (Vaswani et al. 2017, BERT)",
                 "sandwich": "sandwich norm: x = x + norm'(f(norm(x))) (Ding et al. 2021, CogView)",
                 "output": "output norm: x = x + norm(f(x)), no norm on the sublayer's input (OLMo 2)"}[
            "parallel" if parallel else placement]
        sig = "cfg: Config, cross: bool = False" if cross else "cfg: Config"
        what = "self-attention, cross-attention (decoder only), MLP" if cross else "self-attention and MLP"
        return (f'\nclass Block(nn.Module):\n    """One layer, {what}; {words}."""\n\n'
                f"    def __init__(self, {sig}) -> None:\n        super().__init__()\n"
                + "".join(f"        {line}\n" for line in init)
                + "\n    def forward(\n        self,\n" + "".join(f"        {a},\n" for a in args)
                + "    ) -> torch.Tensor:\n"
                + "".join(f"        {line}\n" for line in _long(body)))

    def relative_block(self) -> str:
        """One Transformer-XL / XLNet layer: relative attention over [memory; h], then the MLP; XLNet's
        query stream g goes through the same sublayers."""
        first = next(iter(self.stacks))
        placement = self.stacks[first]["placement"]
        norm = self.use(piece(self.g, self.role("attn_norm")), section="norm")
        attn = self.use(piece(self.g, self.role("attn")), section="attention")
        mlp = self.use(piece(self.g, self.role("mlp")), section="mlp")
        add = self.g.node(f"{first}.layers.0.attn_add")
        drop, deepnorm = add["attrs"]["dropout"], add["kind"] == "residual/deepnorm"
        init = [f"self.attn_norm = {norm}", f"self.attn = {attn}"]
        if placement == "sandwich":
            init.append(f"self.attn_post_norm = {norm}")
        init += [f"self.mlp_norm = {norm}", f"self.mlp = {mlp}"]
        if placement == "sandwich":
            init.append(f"self.mlp_post_norm = {norm}")
        if drop:
            self.config["dropout"] = drop
            init.append("self.drop = nn.Dropout(cfg.dropout)")
        if deepnorm:
            self.config["deepnorm_alpha"] = add["attrs"]["alpha"]
            init.append("self.alpha = cfg.deepnorm_alpha  # DeepNorm (Wang et al. 2022): x = LN(α·x + f(x))")
        y = "self.drop(y)" if drop else "y"
        if placement == "post":
            words = "post-norm: x = norm(x + f(x))"
            add_body = ['norm = getattr(self, f"{name}_norm")',
                        f"return norm({'self.alpha * x' if deepnorm else 'x'} + {y})"]
            ff = ['return self.add("mlp", x, self.mlp(x))']
        elif placement == "sandwich":
            words = "sandwich norm: x = x + norm'(f(norm(x)))"
            add_body = ['y = getattr(self, f"{name}_post_norm")(y)', f"return x + {y}"]
            ff = ['return self.add("mlp", x, self.mlp(self.mlp_norm(x)))']
        else:
            words = "pre-norm: x = x + f(norm(x))"
            add_body = [f"return x + {y}"]
            ff = ['return self.add("mlp", x, self.mlp(self.mlp_norm(x)))']
        args = ["h: torch.Tensor", "mem: torch.Tensor | None", "pos: torch.Tensor", "mask: torch.Tensor"]
        pre = placement != "post"
        body = []
        if pre:
            body += ["if mem is not None:  # keys and values come from the normalised [mem; h]",
                     "    mem = self.attn_norm(mem)"]
        hin = "self.attn_norm(h)" if pre else "h"
        if self.two_stream:
            args += ["seg: torch.Tensor | None", "g: torch.Tensor | None", "mask_g: torch.Tensor",
                     "target_mapping: torch.Tensor | None"]
            gin = "self.attn_norm(g) if g is not None else None" if pre else "g"
            if pre:
                body.append(f"gin = {gin}")
                gin = "gin"
            body += [f"a, ag = self.attn({hin}, mem, pos, mask, seg, {gin}, mask_g, target_mapping)",
                     'h = self.ff(self.add("attn", h, a))',
                     "if g is not None:  # the query stream, through the same sublayers",
                     '    g = self.ff(self.add("attn", g, ag))',
                     "return h, g"]
            ret = "tuple[torch.Tensor, torch.Tensor | None]"
        else:
            body += [f"a = self.attn({hin}, mem, pos, mask)", 'return self.ff(self.add("attn", h, a))']
            ret = "torch.Tensor"
        return ('\nclass Block(nn.Module):\n    """One layer: relative self-attention over [memory; h] and the MLP; '
                + f'{words}."""\n\n'
                "    def __init__(self, cfg: Config) -> None:\n        super().__init__()\n"
                + "".join(f"        {line}\n" for line in init)
                + "\n    def add(self, name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:\n"
                + '        """The residual around sublayer `name` (attn or mlp)."""\n'
                + "".join(f"        {line}\n" for line in add_body)
                + "\n    def ff(self, x: torch.Tensor) -> torch.Tensor:\n"
                + "".join(f"        {line}\n" for line in ff)
                + "\n    def forward(\n        self,\n" + "".join(f"        {a},\n" for a in args)
                + f"    ) -> {ret}:\n" + "".join(f"        {line}\n" for line in body))

    def relative_stack(self) -> str:
        """Transformer-XL's stack: a memory of each layer's input over earlier segments, the masks
        over [memory; current], relative positions; XLNet's permutation mask and query stream."""
        (name,) = self.stacks
        facts = self.stacks[name]
        pre = f"{name}.embed"
        parts = [r for r in ("position", "segment", "task_type", "norm", "project", "patches")
                 if self.has(f"{pre}.{r}")]
        if parts:
            raise NotCompiledYet(f"cannot eject {self.spec.name!r}: a relative-attention stack with embedding "
                                 f"{', '.join(parts)} is not written yet")
        two = self.two_stream
        self.config["embed_dropout"] = facts["embed_dropout"] or 0.0
        emb_init = []
        if two:
            emb_init.append(f"self.mask_token = {self.use(piece(self.g, f'{pre}.mask_token'), section='embed')}")
        emb_init.append("self.drop = nn.Dropout(cfg.embed_dropout)")
        self.defs["embed"].append(
            '\nclass Embeddings(nn.Module):\n    """token vectors -> dropout'
            + ("; and the mask token that starts the query stream" if two else "") + '."""\n\n'
            "    def __init__(self, cfg: Config) -> None:\n        super().__init__()\n"
            + "".join(f"        {line}\n" for line in emb_init)
            + "\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        return self.drop(x)\n")
        position = self.use(piece(self.g, f"{name}.position"), section="position")
        attn = self.g.node(f"{name}.layers.0.attn")["attrs"]
        causal = attn["mask"] == "causal"
        memory = attn["memory"]
        init = ["self.embed = Embeddings(cfg)", f"self.position = {position}"]
        init += self._layer_modules("cfg.layers", "")
        self.config["layers"] = self.spec.stacks[name].layers
        final = self.has(f"{name}.final_norm")
        if final:
            init.append(f"self.final_norm = {self.use(piece(self.g, f'{name}.final_norm'), section='norm')}")
        if memory:
            self.config["memory"] = memory
            init.append("self.memory = cfg.memory  # states kept per layer")
        args = ["x: torch.Tensor", "attention_mask: torch.Tensor | None = None"]
        if two:
            args.append("token_type_ids: torch.Tensor | None = None")
        args.append("mems: list[torch.Tensor] | None = None")
        if two:
            args += ["perm_mask: torch.Tensor | None = None", "target_mapping: torch.Tensor | None = None"]
        body = ["B, T, _ = x.shape" if two else "T = x.shape[1]",
                "x = self.embed(x)",
                "M = 0 if mems is None else mems[0].shape[1]",
                "S = M + T  # keys: [memory; current]",
                "pos = self.embed.drop(self.position(T, S, x.device))  # [T + S, H]",
                "k = torch.arange(S, device=x.device)  # key positions",
                "q = torch.arange(M, S, device=x.device)  # query positions",
                "# hidden[b, i, j]: query i may not see key j",
                "hidden = torch.zeros(1, T, S, dtype=torch.bool, device=x.device)"]
        if causal:
            body.append("hidden = hidden | (k[None, :] > q[:, None])[None]  # no looking ahead")
        body += ["if attention_mask is not None:  # [B, T] or [B, M + T]; memory stays visible",
                 "    pad = attention_mask == 0",
                 "    hidden = hidden | F.pad(pad, (S - pad.shape[1], 0))[:, None, :]"]
        if two:
            body += ["if perm_mask is not None:  # XLNet: perm_mask[b, i, j] = 1 hides token j from query i",
                     "    hidden = hidden | F.pad(perm_mask.bool(), (M, 0))"]
        body += ["hide = torch.zeros(hidden.shape, device=x.device).masked_fill(hidden, -1e30)",
                 "own = k[None, :] == q[:, None]  # [T, S]: the content stream always sees itself",
                 "mask = hide.masked_fill(own[None], 0.0)[:, None]  # [B|1, 1, T, S]"]
        if two:
            body += ["mask_g = hide[:, None]  # the query stream sees itself only if perm_mask allows",
                     "seg = None",
                     "if token_type_ids is not None:  # memory counts as segment 0",
                     "    keys = F.pad(token_type_ids, (M, 0))  # [B, S]",
                     "    seg = (token_type_ids[:, :, None] != keys[:, None, :])[:, None]  # [B, 1, T, S]",
                     "g = None",
                     "if target_mapping is not None:  # the query stream starts from the mask token",
                     "    P = target_mapping.shape[1]",
                     "    g = self.embed.drop(self.embed.mask_token.weight.expand(B, P, -1))  # [B, P, H]"]
        body.append("new = []  # the next segment's memory")
        call = "x, g = layer(x, mem, pos, mask, seg, g, mask_g, target_mapping)" if two else \
            "x = layer(x, mem, pos, mask)"
        body += [*self._layer_loop(), "    mem = None if mems is None else mems[i]",
                 "    new.append(self.remember(x, mem))", f"    {call}"]
        if two:
            body.append("x = g if g is not None else x  # the query stream's output when it runs")
        if final:
            body.append("x = self.final_norm(x)")
        body.append("return x, new")
        keep = "new[:, -self.memory :]" if memory else "new"
        remember = ["new = x if mem is None else torch.cat((mem, x), dim=1)", f"return {keep}.detach()"]
        what = "XLNet's two streams" if two else "Transformer-XL's segment recurrence"
        return (f'\nclass Stack(nn.Module):\n    """The stack ({what}): embeddings, relative positions, layers '
                'over a\n    segment memory (each layer\'s input over earlier segments, no gradient)."""\n\n'
                "    def __init__(self, cfg: Config) -> None:\n        super().__init__()\n"
                + "".join(f"        {line}\n" for line in init)
                + "\n    def remember(self, x: torch.Tensor, mem: torch.Tensor | None) -> torch.Tensor:\n"
                + '        """The memory for the next segment: the old one, then this layer\'s input."""\n'
                + "".join(f"        {line}\n" for line in remember)
                + "\n    def forward(\n        self,\n" + "".join(f"        {a},\n" for a in args)
                + "    ) -> tuple[torch.Tensor, list[torch.Tensor]]:\n"
                + "".join(f"        {line}\n" for line in body))

    def _layer_modules(self, n_layers: str, cross_arg: str) -> list[str]:
        """The stack's layer modules: one per layer, one shared (ALBERT), or one per group."""
        if self.spec.sharing.kind == "groups":
            self.config["layer_groups"] = self.spec.sharing.groups
            return ["# ALBERT's groups (Lan et al. 2020): cfg.layer_groups blocks, each run by",
                    "# depth // cfg.layer_groups consecutive layers; keyed by their first layer",
                    f"depth = {n_layers}", "self.per = depth // cfg.layer_groups",
                    "firsts = range(0, depth, self.per)",
                    f"self.layers = nn.ModuleDict({{str(i): Block(cfg{cross_arg}) for i in firsts}})",
                    "self.depth = depth"]
        if self.spec.sharing.kind == "all":
            return ["# ALBERT (Lan et al. 2020): every layer is this one block, run cfg.layers times",
                    f'self.layers = nn.ModuleDict({{"0": Block(cfg{cross_arg})}})', f"self.depth = {n_layers}"]
        return [f"depth = {n_layers}",
                f"self.layers = nn.ModuleDict({{str(i): Block(cfg{cross_arg}) for i in range(depth)}})"]

    def _layer_loop(self) -> list[str]:
        """`for i ...:` binding `layer`, the block that runs at depth i."""
        if self.spec.sharing.kind == "groups":
            return ["for i in range(self.depth):", "    layer = self.layers[str(i // self.per * self.per)]"]
        if self.spec.sharing.kind == "all":
            return ["for i in range(self.depth):", '    layer = self.layers["0"]']
        return ["for i, layer in enumerate(self.layers.values()):"]

    def embeddings(self, stack: str) -> tuple[str | None, list[str]]:
        """The stack's Embeddings class (None when it only reads token vectors) and its call args."""
        pre = f"{stack}.embed"
        parts = {r: f"{pre}.{r}" for r in ("patches", "position", "segment", "task_type", "norm", "project")
                 if self.has(f"{pre}.{r}")}
        dropout = self.stacks[stack]["embed_dropout"]
        if not parts and not dropout:
            return None, []
        init, body, args = [], [], ["x: torch.Tensor"]
        if "patches" in parts:
            init.append(f"self.patches = {self.use(piece(self.g, parts['patches']), section='embed')}")
            body.append("x = self.patches(x)  # pixels [B, C, H, W] -> [B, N+1, E]")
        if "position" in parts:
            p = piece(self.g, parts["position"])
            init.append(f"self.position = {self.use(p, section='position')}")
            if self.stacks[stack]["padding_aware"]:
                args.append("attention_mask: torch.Tensor | None")
                body += ["if attention_mask is None:",
                         "    positions = torch.arange(x.shape[1], device=x.device)[None]  # [1, T]",
                         "else:  # RoBERTa: count kept tokens only; padding reads row offset - 1",
                         "    keep = attention_mask.long()",
                         "    positions = keep.cumsum(1) * keep - 1  # [B, T]"]
            elif self.g.node(parts["position"])["kind"] == "position/glm_2d":
                args.append("position_ids: torch.Tensor | None = None")
                body += ["positions = position_ids  # [B, 2, T] for blank infilling, see GLM2DPosition",
                         "if positions is None:",
                         "    positions = torch.arange(x.shape[1], device=x.device)[None]  # [1, T]"]
            else:
                body.append("positions = torch.arange(x.shape[1], device=x.device)[None]  # [1, T]")
            body.append("x = x + " + p.call.format(m="self.position", x="positions"))
        for table in ("segment", "task_type"):
            if table in parts:
                init.append(f"self.{table} = {self.use(piece(self.g, parts[table]))}")
                arg = "token_type_ids" if table == "segment" else "task_type_ids"
                args.append(f"{arg}: torch.Tensor | None = None")
                body += [f"if {arg} is None:",
                         f"    {arg} = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)",
                         f"x = x + self.{table}({arg})"]
        if "norm" in parts:
            init.append(f"self.norm = {self.use(piece(self.g, parts['norm']), 'cfg.embed_dim', 'norm')}")
            body.append("x = self.norm(x)")
        if dropout:
            self.config["embed_dropout"] = dropout
            init.append("self.drop = nn.Dropout(cfg.embed_dropout)")
            body.append("x = self.drop(x)")
        if "project" in parts:
            init.append(f"self.project = {self.use(piece(self.g, parts['project']))}")
            body.append("x = self.project(x)  # [B, T, E] -> [B, T, H] (ALBERT's factorised embedding)")
        body.append("return x")
        what = "patches" if "patches" in parts else "token vectors"
        code = (f'\nclass Embeddings(nn.Module):\n    """{what} + ' + " + ".join(
            r for r in ("position", "segment", "task_type") if r in parts) + " -> norm -> dropout" + (
            " -> projection E -> H" if "project" in parts else "") + '."""\n\n'
            "    def __init__(self, cfg: Config) -> None:\n        super().__init__()\n"
            + "".join(f"        {line}\n" for line in init)
            + f"\n    def forward(self, {', '.join(args)}) -> torch.Tensor:\n"
            + "".join(f"        {line}\n" for line in body))
        return code.replace('"""token vectors + ', '"""token vectors + ').replace(" +  ->", " ->"), args[1:]

    def stack(self) -> str:
        names = list(self.stacks)
        first = names[0]
        emb, emb_args = self.embeddings(first)
        for other in names[1:]:
            if self.embeddings(other) != (emb, emb_args):
                raise NotCompiledYet(f"cannot eject {self.spec.name!r}: stacks whose embeddings differ")
        if emb is not None:
            self.defs["embed"].append(emb)
        pos_id = f"{first}.position" if self.has(f"{first}.position") else None
        pos = piece(self.g, pos_id) if pos_id else None
        final = f"{first}.final_norm" if self.has(f"{first}.final_norm") else None
        if self.encdec and any(self.has(f"{s}.final_norm") != bool(final) for s in names):
            raise NotCompiledYet(f"cannot eject {self.spec.name!r}: a final norm in one stack only")
        causal_attrs = {s: self.g.node(f"{s}.layers.0.attn")["attrs"]["mask"] == "causal" for s in names}
        prefix = self.g.node(f"{first}.layers.0.attn")["attrs"]["mask"] == "prefix"
        if prefix and self.encdec:
            raise NotCompiledYet(f"cannot eject {self.spec.name!r}: a prefix mask in an encoder-decoder")
        init: list[str] = []
        if emb is not None:
            init.append("self.embed = Embeddings(cfg)")
        if pos is not None:
            bid = "not decoder" if self.encdec else str(not causal_attrs[first])
            init.append(f"self.position = {self.use(pos, section='position', bidirectional=bid)}")
        layers = self.spec.stacks[first].layers
        lay = {s: self.spec.stacks[s].layers for s in names}
        if len(set(lay.values())) == 1:
            self.config["layers"] = layers
            n_layers = "cfg.layers"
        else:
            for s in names:
                self.config[f"{s}_layers"] = lay[s]
            n_layers = "cfg.decoder_layers if decoder else cfg.encoder_layers"
        shared = self.spec.sharing.kind == "all"
        groups = self.spec.sharing.groups if self.spec.sharing.kind == "groups" else None
        cross_arg = ", cross=decoder" if self.encdec and self.role("cross") else ""
        if groups is not None:
            self.config["layer_groups"] = groups
            init += ["# ALBERT's groups (Lan et al. 2020): cfg.layer_groups blocks, each run by",
                     "# depth // cfg.layer_groups consecutive layers; keyed by their first layer",
                     f"depth = {n_layers}" if self.encdec else "depth = cfg.layers",
                     "self.per = depth // cfg.layer_groups",
                     "firsts = range(0, depth, self.per)",
                     f"self.layers = nn.ModuleDict({{str(i): Block(cfg{cross_arg}) for i in firsts}})",
                     "self.depth = depth"]
        elif shared:
            init += ["# ALBERT (Lan et al. 2020): every layer is this one block, run cfg.layers times",
                     f'self.layers = nn.ModuleDict({{"0": Block(cfg{cross_arg})}})',
                     f"self.depth = {n_layers}"]
        else:
            init += [f"depth = {n_layers}" if self.encdec else "depth = cfg.layers",
                     f"self.layers = nn.ModuleDict({{str(i): Block(cfg{cross_arg}) for i in range(depth)}})"]
        if final:
            init.append(f"self.final_norm = {self.use(piece(self.g, final), section='norm')}")
        if self.encdec:
            init.insert(0, "self.causal = decoder  # the decoder may not look ahead")
        # forward
        args = ["x: torch.Tensor", "attention_mask: torch.Tensor | None = None"]
        args += [a.split(":")[0] + ": torch.Tensor | None = None" for a in emb_args if not a.startswith("attention")]
        body: list[str] = []
        if emb is not None:
            call = ", ".join(["x"] + [a.split(":")[0] for a in emb_args])
            body.append(f"x = self.embed({call})  # [B, T, H]")
        body.append("T = x.shape[1]")
        body.append("# which keys each query may see [B|1, 1, T, T]")
        body.append("visible = torch.ones(T, T, dtype=torch.bool, device=x.device)")
        if self.encdec:
            body += ["if self.causal:", "    visible = visible.tril()  # no looking ahead"]
        elif causal_attrs[first] or prefix:
            body.append("visible = visible.tril()  # causal: no looking ahead")
        window = self.g.node(f"{first}.layers.0.attn")["attrs"]["window"]
        if window is not None:
            if self.encdec:
                raise NotCompiledYet(f"cannot eject {self.spec.name!r}: sliding windows in an encoder-decoder")
            self.config["window"] = window
            body += ["pos = torch.arange(T, device=x.device)",
                     "dist = pos[:, None] - pos[None, :]  # [T, T]: query - key",
                     "# sliding window (Beltagy et al. 2020; Mistral): only the last cfg.window keys",
                     "visible = visible & " + ("(dist < cfg.window)" if causal_attrs[first]
                                               else "(dist.abs() < cfg.window)").replace("cfg.", "self.")]
            init.append("self.window = cfg.window")
        if prefix:
            args.append("prefix_lengths: torch.Tensor | None = None")
            body += ["# GLM's prefix LM (Du et al. 2022): each query also sees its sequence's prefix",
                     "pos = torch.arange(T, device=x.device)",
                     "in_prefix = pos[None, :] < prefix_lengths[:, None]  # [B, T]",
                     "visible = visible[None, None] | in_prefix[:, None, None, :]  # [B, 1, T, T]"]
        else:
            body.append("visible = visible[None, None]  # [1, 1, T, T]")
        body += ["if attention_mask is not None:",
                 "    keep = attention_mask[:, None, None, :].bool()  # [B, 1, 1, T]",
                 "    visible = visible & keep  # [B, 1, T, T]: padding is never a key",
                 "mask = additive(visible, x.dtype)"]
        extra = ""
        if pos is not None:
            a0 = self.g.node(f"{first}.layers.0.attn")
            if "interleaved_rotary" in a0["attrs"] or a0["kind"] == "attention/disentangled":
                body += ["positions = torch.arange(T, device=x.device)[None]  # [1, T]",
                         "rotary = " + pos.call.format(m="self.position", x="positions")]
                extra = ", rotary"
            else:
                body.append("mask = mask + " + pos.call.format(m="self.position", x="T") + "  # [B|1, heads, T, T]")
        if self.encdec:
            args += ["memory: torch.Tensor | None = None", "memory_mask: torch.Tensor | None = None"]
            body += ["if memory_mask is not None:",
                     "    keep = memory_mask[:, None, None, :].bool()  # [B, 1, 1, S]",
                     "    memory_mask = additive(keep, x.dtype)"]
            extra += ", memory, memory_mask" if self.role("cross") else ""
        if groups is not None:
            body += ["for i in range(self.depth):",
                     f"    x = self.layers[str(i // self.per * self.per)](x, mask{extra})"]
        elif shared:
            body += ["for _ in range(self.depth):", f'    x = self.layers["0"](x, mask{extra})']
        else:
            body += ["for layer in self.layers.values():", f"    x = layer(x, mask{extra})"]
        body.append("return self.final_norm(x)" if final else "return x")
        sig = "cfg: Config, decoder: bool = False" if self.encdec else "cfg: Config"
        what = "embeddings, layers, final norm" if final else "embeddings and layers"
        return (f'\nclass Stack(nn.Module):\n    """One stack ({"encoder or decoder" if self.encdec else first}): '
                f'{what}."""\n\n'
                f"    def __init__(self, {sig}) -> None:\n        super().__init__()\n"
                + "".join(f"        {line}\n" for line in init)
                + "\n    def forward(\n        self,\n" + "".join(f"        {a},\n" for a in args)
                + "    ) -> torch.Tensor:\n"
                + "".join(f"        {line}\n" for line in _long(body)))

    def model(self) -> str:
        g, names = self.g, list(self.stacks)
        init, body = [], []
        tok = piece(g, "embed.token") if self.has("embed.token") else None
        if tok is not None:
            init.append(f'self.embed = nn.ModuleDict({{"token": {self.use(tok)}}})')
            self.config["embed_dim"] = self.E
        else:
            self.config["embed_dim"] = self.E
        stack_args = [a for a in self.stack_args()]
        for s in names:
            init.append(f"self.{s} = Stack(cfg{', decoder=True' if s == 'decoder' and self.encdec else ''})")
        pooler = piece(g, "pooler") if self.has("pooler") else None
        if pooler is not None:
            init.append(f"self.pooler = {self.use(pooler)}")
        heads = []
        for nid in g.nodes(axis="head"):
            heads.append((g.node(nid)["role"], piece(g, nid), any(g.node(p)["axis"] == "pool"
                                                                  for p in g.nx.predecessors(nid))))
        if heads:
            made = [f'"{name}": {self.use(p)}' for name, p, _ in heads]
            one = "self.heads = nn.ModuleDict({" + ", ".join(made) + "})"
            if len(one) + 8 <= 88:
                init.append(one)
            else:
                init += ["self.heads = nn.ModuleDict(", "    {", *[f"        {m}," for m in made], "    }", ")"]
        args = stack_args
        emb = "self.embed.token"
        call = tok.call if tok else "{m}({x})"
        if self.encdec:
            body += [f"x = {call.format(m=emb, x='input_ids')}  # [B, S, E]",
                     "memory = self.encoder(x, attention_mask)  # [B, S, H]",
                     f"x = {call.format(m=emb, x='decoder_input_ids')}  # [B, T, E]",
                     "h = self.decoder(x, decoder_attention_mask, memory, attention_mask)  # [B, T, H]"]
            mask = "decoder_attention_mask"
        else:
            s = names[0]
            extra = "".join(f", {a.split(':')[0]}" for a in args[2:])
            if self.spec.embeddings.patches is not None:
                body.append(f"h = self.{s}(pixel_values)  # [B, N+1, H]")
                mask = "None"
            else:
                body.append(f"x = {call.format(m=emb, x='input_ids')}  # [B, T, E]")
                if self.relative:
                    extra = "".join(f", {a.split(':')[0]}" for a in args[2:] if not a.startswith("use_cache"))
                    body.append(f"h, mems = self.{s}(x, attention_mask{extra})  # [B, T, H] (XLNet: [B, P, H])")
                else:
                    body.append(f"h = self.{s}(x, attention_mask{extra})  # [B, T, H]")
                mask = "attention_mask"
        body.append('out = {"last_hidden_state": h}')
        if pooler is not None:
            body.append(f"pooled = {pooler.call.format(m='self.pooler', x='h', mask=mask)}  # [B, H]")
        for name, p, pooled in heads:
            body.append(f'out["{name}"] = ' + p.call.format(m=f"self.heads.{name}", x="pooled" if pooled else "h"))
        if self.relative:
            body += ["if use_cache:", '    out["mems"] = mems  # pass back as mems= with the next segment']
        body.append("return out")
        images = self.spec.embeddings.patches is not None
        first_arg = "pixel_values: torch.Tensor" if images else "input_ids: torch.Tensor"
        sig = [first_arg] + args[1:] if self.spec.embeddings.patches is None else [first_arg]
        doc = {"decoder": "Decoder-only", "encoder": "Encoder-only",
               "encoder-decoder": "Encoder-decoder"}[self.spec.family]
        return (f'\nclass Model(nn.Module):\n    """{doc} model: {self.spec.name}."""\n\n'
                "    def __init__(self, cfg: Config) -> None:\n        super().__init__()\n        self.cfg = cfg\n"
                + "".join(f"        {line}\n" for line in init)
                + "\n    def forward(\n        self,\n" + "".join(f"        {a},\n" for a in sig)
                + "    ) -> dict[str, torch.Tensor]:\n"
                + "".join(f"        {line}\n" for line in _long(body)))

    def stack_args(self) -> list[str]:
        if self.encdec:
            return ["input_ids: torch.Tensor", "decoder_input_ids: torch.Tensor",
                    "attention_mask: torch.Tensor | None = None", "decoder_attention_mask: torch.Tensor | None = None"]
        args = ["input_ids: torch.Tensor", "attention_mask: torch.Tensor | None = None"]
        first = next(iter(self.stacks))
        if self.has(f"{first}.embed.position") and self.g.node(f"{first}.embed.position")["kind"] == "position/glm_2d":
            args.append("position_ids: torch.Tensor | None = None")
        for r, a in (("segment", "token_type_ids"), ("task_type", "task_type_ids")):
            if self.has(f"{first}.embed.{r}"):
                args.append(f"{a}: torch.Tensor | None = None")
        if self.g.node(f"{first}.layers.0.attn")["attrs"]["mask"] == "prefix":
            args.append("prefix_lengths: torch.Tensor | None = None")
        if self.relative:
            if self.two_stream:
                args.append("token_type_ids: torch.Tensor | None = None")
            args += ["mems: list[torch.Tensor] | None = None", "use_cache: bool = False"]
            if self.two_stream:
                args += ["perm_mask: torch.Tensor | None = None", "target_mapping: torch.Tensor | None = None"]
        return args

    # ------------------------------------------------------------------ file

    def write(self) -> str:
        self.check()
        if self.relative:
            self.defs["block"].append(self.relative_block())
            self.defs["stack"].append(self.relative_stack())
        else:
            self.defs["block"].append(self.block())
            self.defs["stack"] += [ADDITIVE, self.stack()]
        model = self.model()
        spec = self.spec
        body = "\n".join([*(code for defs in self.defs.values() for code in defs), model])
        cfg_lines = "".join(f"    {k}: {type(v).__name__} = {v!r}\n" for k, v in self._ordered().items())
        config = f'\n@dataclass\nclass Config:\n    """The sizes and constants of {spec.name}."""\n\n{cfg_lines}'
        imports = ["import math\n" if "math." in body else "", "from dataclasses import dataclass\n\n",
                   "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"]
        source = f"Source: {spec.source}.\n" if getattr(spec, "source", None) else ""
        head = HEADER.format(title=f"{spec.name}: {self._title()}.", name=spec.name, source=source,
                             summary=self.summary(),
                             extra=" (and safetensors to load weights)" if self.weights else "",
                             imports="".join(imports))
        return fit(head + config + "\n" + body + self.tail())

    def summary(self) -> str:
        """The layer in words, from the kinds' `words` facet: "RMSNorm (pre), rotary (theta 10000), ..."."""
        first = next(iter(self.stacks))
        words = []
        for role in ("attn_norm", "attn", "mlp"):
            if role == "attn_norm" and f"{first}.layers.0.attn_norm" not in self.g:
                role = "attn_post_norm"  # placement output: the norm is on the sublayer's output
            d = self.g.node(f"{first}.layers.0.{role}")
            w = block_kind(d["kind"]).words(d["attrs"])
            words.append(f"{w} ({self.stacks[first]['placement']}-norm)" if role.startswith("attn_") else w)
        pos = self.spec.position
        if pos.kind != "none":
            nid = next(n for n in self.g.nodes(role="position"))
            words.insert(1, block_kind(f"position/{pos.kind}").words(self.g.node(nid)["attrs"]) + " positions")
        return "Each layer: " + ", ".join(words) + "."

    def _title(self) -> str:
        fam = {"decoder": "a decoder-only", "encoder": "an encoder-only",
               "encoder-decoder": "an encoder-decoder"}[self.spec.family]
        return f"{fam} transformer in one file"

    def _ordered(self) -> dict[str, Any]:
        order = ["vocab", "hidden", "embed_dim", "layers", "encoder_layers", "decoder_layers", "heads", "kv_heads",
                 "head_dim", "ffn", "max_positions"]
        cfg = dict(self.config)
        cfg.setdefault("hidden", self.H)
        if self.E == self.H:
            cfg.pop("embed_dim", None)
        out = {k: cfg.pop(k) for k in order if k in cfg}
        return {**out, **cfg}

    def tail(self) -> str:
        load = ""
        if self.weights:
            load = (f'\n\ndef load(path: str = {self.weights!r}) -> Model:\n'
                    '    """The model with the trained weights in `path` (plmgraph\'s names)."""\n'
                    "    from safetensors.torch import load_file\n\n"
                    "    model = Model(Config())\n"
                    "    model.load_state_dict(load_file(path))\n"
                    "    return model.eval()\n")
        tiny = self.tiny()
        inputs = self.smoke_inputs()
        return (load + '\n\nif __name__ == "__main__":\n'
                "    # a tiny copy of the same architecture, one forward pass\n"
                f"    cfg = Config({tiny})\n"
                "    model = Model(cfg).eval()\n"
                + inputs
                + "    print({k: tuple(v.shape) for k, v in out.items()})\n")

    def tiny(self) -> str:
        c = self._ordered()
        t: dict[str, Any] = {}
        small = {"vocab": 128, "hidden": 64, "heads": 4, "head_dim": 16, "ffn": 128, "layers": 2,
                 "encoder_layers": 2, "decoder_layers": 2, "experts": 4, "expert_ffn": 64, "embed_dim": 32}
        for k, v in small.items():
            if k in c and c[k] != v:
                t[k] = v
        if "kv_heads" in c:
            t["kv_heads"] = 1 if c["kv_heads"] == 1 else 2
        if "rotary_dim" in c:
            t["rotary_dim"] = 16 * c["rotary_dim"] // c["head_dim"]
        if "top_k" in c:
            t["top_k"] = min(c["top_k"], 2)
        if c.get("layer_groups", 1) > 2:
            t["layer_groups"] = 2  # it must divide the two tiny layers
        if "image_size" in c:
            t["image_size"] = 32
            t["patch_size"] = 8
        return ", ".join(f"{k}={v!r}" for k, v in t.items())

    def smoke_inputs(self) -> str:
        if self.spec.embeddings.patches is not None:
            return ("    pixels = torch.randn(2, cfg.channels, cfg.image_size, cfg.image_size)\n"
                    "    out = model(pixels)\n")
        lines = ["    ids = torch.randint(0, cfg.vocab, (2, 8))\n",
                 "    mask = torch.ones(2, 8, dtype=torch.long)\n",
                 "    mask[1, 6:] = 0  # the second sequence is padded\n"]
        if self.encdec:
            lines.append("    out = model(ids, ids, attention_mask=mask, decoder_attention_mask=mask)\n")
        else:
            first = next(iter(self.stacks))
            if self.g.node(f"{first}.layers.0.attn")["attrs"]["mask"] == "prefix":
                lines.append("    prefix = torch.tensor([3, 2])  # the bidirectional part of each sequence\n")
                lines.append("    out = model(ids, attention_mask=mask, prefix_lengths=prefix)\n")
            else:
                lines.append("    out = model(ids, attention_mask=mask)\n")
        return "".join(lines)


ADDITIVE = '''
def additive(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask (True = may attend) as the additive mask SDPA adds to the scores."""
    scores = torch.zeros(visible.shape, dtype=dtype, device=visible.device)
    return scores.masked_fill(~visible, torch.finfo(dtype).min)
'''


def _long(lines: list[str]) -> list[str]:
    return lines


#: The line length of the ejected file: ruff's and black's default, so it passes `ruff format
#: --check` with no configuration of its own.
WIDTH = 88


def _split(inner: str) -> list[str]:
    """`inner` at its top-level commas (outside brackets and strings)."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(inner):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    return [p for p in parts if p]


def _fit_line(line: str) -> list[str]:
    """One code line split the way ruff format splits it when it is longer than `WIDTH`: the
    last bracket's contents on one indented line, else one item per line with a trailing comma
    (a ``def`` splits its parameters that way)."""
    if len(line) <= WIDTH or line.lstrip().startswith(('"', "'", "#")):
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    if "  # " in line:  # a shape comment goes above the line it would push past the width
        code, comment = line.split("  # ", 1)
        return [f"{indent}# {comment}", *_fit_line(code)]
    code = line.strip()
    if code.startswith("def "):
        open_at = code.index("(")
        close_at = _match(code, open_at)
        head, inner, tail = code[: open_at + 1], code[open_at + 1 : close_at], code[close_at:]
        return [indent + head, *(f"{indent}    {p}," for p in _split(inner)), indent + tail]
    if code[-1] not in ")]}":
        return [line]
    open_at = _opening(code)
    head, inner, tail = code[: open_at + 1], code[open_at + 1 : -1], code[-1]
    if len(indent) + 4 + len(inner) <= WIDTH:
        return [indent + head, f"{indent}    {inner}", indent + tail]
    return [indent + head, *(f"{indent}    {p}," for p in _split(inner)), indent + tail]


def _match(code: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(code)):
        depth += code[i] in "([{"
        depth -= code[i] in ")]}"
        if depth == 0:
            return i
    return len(code) - 1


def _opening(code: str) -> int:
    depth = 0
    for i in range(len(code) - 1, -1, -1):
        depth += code[i] in ")]}"
        depth -= code[i] in "([{"
        if depth == 0:
            return i
    return 0


def fit(text: str) -> str:
    """Every over-long code line of `text` split as ruff format would (docstrings untouched)."""
    out, in_doc = [], False
    for line in text.split("\n"):
        if line.count('"""') % 2 == 1:
            in_doc = not in_doc
            out.append(line)
            continue
        out.extend([line] if in_doc else _fit_line(line))
    return "\n".join(out)


def eject(graph: ArchGraph, weights: str | None = None) -> str:
    """The source of one standalone PyTorch file for `graph` (see the module docstring)."""
    return _Writer(graph, weights).write()
