"""What the attention kinds share: head-count words, the diff's facts, the diagram's detail
line, the qk-norm parameters and init, T5's unscaled-query init, and Transformer-XL's
relative attention (`RelativeKind`, the base of ``two_stream`` and ``segment_memory``).

Not a kind itself: nothing here is registered.  Torch-free (the torch halves import lazily).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..base import KINDS, Aspect, Attrs, Kind, Shape, mm, num, onoff

NonNegInt = Annotated[int, Field(ge=0)]

#: Diagram titles by head arrangement.
TITLES = {"MHA": "Multi-head attention", "GQA": "Grouped-query attention", "MQA": "Multi-query attention"}
_BIAS = {(True, True): "on", (False, False): "off", (True, False): "qkv only", (False, True): "output only"}


def attention_type(attrs: dict[str, Any]) -> str:
    """MHA, MQA (one kv head) or GQA (fewer kv heads than query heads)."""
    kv, n = attrs["kv_heads"], attrs["heads"]
    if kv == n:
        return "MHA"
    if kv == 1:
        return "MQA"
    return "GQA"


def qk_norm_widths(a: Attrs) -> tuple[int, int]:
    """The widths of the q and k norms: ``head_dim`` each (scope head), or the whole projections,
    ``heads * head_dim`` and ``kv_heads * head_dim`` (scope projection, OLMo 2)."""
    if a.get("qk_norm_scope", "head") == "projection":
        return a["heads"] * a["head_dim"], a["kv_heads"] * a["head_dim"]
    return a["head_dim"], a["head_dim"]


def qk_norm_params(a: Attrs) -> dict[str, Shape]:
    """The q/k norms' parameters (the block's norm, `qk_norm_widths` wide), when ``qk_norm``."""
    if not a["qk_norm"]:
        return {}
    norm = a["norm"]
    out: dict[str, Shape] = {}
    for t, width in zip(("q_norm", "k_norm"), qk_norm_widths(a), strict=True):
        shapes = KINDS[f"norm/{norm['kind']}"].params({**{k: v for k, v in norm.items() if k != "kind"},
                                                       "width": width})
        out.update({f"{t}.{p}": s for p, s in shapes.items()})
    return out


def flops(a: Attrs, params: dict[str, Shape], T: int) -> int:
    """The projections plus scores and weighted sum, 4 * heads * head_dim * T (stats conventions)."""
    projections = mm(params, "qkv.weight", "q.weight", "kv.weight", "out.weight", "r.weight")
    return projections + 4 * a["heads"] * a["head_dim"] * T


def aspects(kind: str, prefix: str, a: Attrs, role: str) -> list[Aspect]:
    """The facts a diff compares; `prefix` names a relative variant ("two-stream relative ")."""
    who = "cross-attention" if role == "cross" else "attention"
    t = attention_type(a)
    text = t if t != "GQA" else f"GQA ({a['kv_heads']} kv heads)"
    bias = _BIAS[(a["qkv_bias"], a["out_bias"])]
    out = [
        Aspect(who, prefix + text, (kind, t)),
        Aspect(f"{who} biases", bias, bias),
        Aspect(f"{who} QK norm", qk_norm_words(a), qk_norm_words(a) if a["qk_norm"] else False),
        Aspect(f"{who} scale", "1/√d" if a["scale"] is None else num(a["scale"])),
        Aspect(f"{who} dropout", num(a["dropout"])),
    ]
    cap = a.get("softcap")
    out.append(Aspect(f"{who} soft-cap", "none" if cap is None else f"{num(cap)}·tanh(s/{num(cap)})", cap is not None))
    if role != "cross":
        out.append(Aspect("attention mask", a["mask"], a["mask"]))
        out.append(Aspect("sliding window", "none" if a["window"] is None else f"{a['window']} tokens",
                          a["window"] is not None))
    if "memory" in a:
        out.append(Aspect("segment memory", f"{a['memory']} tokens"))
    return out


def qk_norm_words(a: Attrs) -> str:
    """"off", "on" (per head) or "on, over the whole q/k projections" (OLMo 2)."""
    if a["qk_norm"] and a.get("qk_norm_scope", "head") == "projection":
        return "on, over the whole q/k projections"
    return onoff(a["qk_norm"])


def detail(a: Attrs, *, cross: bool = False) -> str:
    """The diagram's detail line: "12 heads · 4 kv · d=64 · window 4096 · QK-norm"."""
    t = attention_type(a)
    parts = [f"{a['heads']} heads"]
    if t != "MHA":
        parts.append(f"{a['kv_heads']} kv")
    parts.append(f"d={a['head_dim']}")
    if not cross and a.get("mask") == "prefix":
        parts.append("prefix mask")
    if a.get("window"):
        parts.append(f"window {a['window']}")
    if a.get("qk_norm"):
        parts.append("QK-norm (whole projection)" if a.get("qk_norm_scope") == "projection" else "QK-norm")
    if a.get("softcap"):
        parts.append(f"soft-cap {num(a['softcap'])}")
    return " · ".join(parts)


# ---------------------------------------------------------------- torch halves (lazy)


def options(node: Any) -> dict[str, Any]:
    """Keyword arguments of `SelfAttention` / `CrossAttention` from a node's attrs."""
    a = node.attrs
    opts = dict(qkv_bias=a["qkv_bias"], out_bias=a["out_bias"], scale=a.get("scale"), dropout=a.get("dropout", 0.0))
    if a.get("softcap") is not None:
        opts["softcap"] = a["softcap"]
    if a.get("qk_norm"):
        opts["qk_norm"] = a["norm"]  # the block's norm, per head or over the whole projection
        if a.get("qk_norm_scope", "head") == "projection":
            opts["qk_norm_scope"] = "projection"
    return opts


def init_qk_norm(module: Any, rule: Any) -> None:
    """The per-head q/k norms initialise as their norm kind says."""
    if getattr(module, "qk_norm", False):
        norm = KINDS[f"norm/{rule.attrs['norm']['kind']}"]
        norm.init(module.q_norm, rule)
        norm.init(module.k_norm, rule)


def scale_unscaled_queries(module: Any, proj: Any, rule: Any) -> None:
    """fan_in init: attention without 1/sqrt(head_dim) on its scores (T5, scale 1.0) starts its
    query rows at (hidden * head_dim)**-0.5 instead, which is what HF T5 does."""
    if rule.fan_in and module.scale == 1.0:
        proj.weight[: module.heads * module.head_dim].mul_(module.head_dim**-0.5)


class RelativeKind(Kind):
    """Transformer-XL relative attention (Dai et al. 2019) with a segment memory; with segment
    terms (`segments`) XLNet's two-stream attention.  Subclasses set name, spec, words, titles."""

    #: The compiler runs its stack as a `RelativeStack` (segment memory, two streams).
    relative: bool = True
    #: XLNet's segment bias and embeddings (``r_s_bias``, ``seg_embed``).
    segments: bool = False
    #: The diff's prefix before the head arrangement, and the diagram's title.
    prefix: str = ""
    title: str = ""

    def eject(self, a: Attrs):  # noqa: ANN201
        from ...eject.pieces import relative_attention

        return relative_attention(a, two_stream=self.segments)

    def params(self, a: Attrs) -> dict[str, Shape]:
        n, d, H = a["heads"], a["head_dim"], a["hidden"]
        q_out = n * d
        params: dict[str, Shape] = {"qkv.weight": (3 * q_out, H), "r.weight": (q_out, H), "r_w_bias": (n, d),
                                    "r_r_bias": (n, d)}
        if self.segments:
            params["r_s_bias"] = (n, d)
            params["seg_embed"] = (2, n, d)
        params["out.weight"] = (H, q_out)  # no biases
        return {**params, **qk_norm_params(a)}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return flops(a, params, T)

    def words(self, a: Attrs) -> str:
        return f"attention ({attention_type(a)})"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return aspects(self.name, self.prefix, a, role)

    def label(self, a: Attrs) -> tuple[str, str]:
        return self.title, detail(a)

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.registry import NotSupportedError
        from ...compile.relative import RelativeAttention

        if node.get("window"):
            raise NotSupportedError(f"{node.id}: a sliding window with {node.kind} attention is not supported")
        if node["kv_heads"] != node["heads"]:
            raise NotSupportedError(f"{node.id}: {node.kind} attention has one key/value head per query head "
                                    f"(kv_heads {node['kv_heads']} != heads {node['heads']})")
        if node.get("qk_norm"):
            raise NotSupportedError(f"{node.id}: qk_norm with {node.kind} attention is not supported")
        return RelativeAttention(node["hidden"], node["heads"], node["head_dim"], segments=self.segments,
                                 scale=node.get("scale"), dropout=node.get("dropout", 0.0))

    def init(self, module, rule) -> None:  # noqa: ANN001
        for name in ("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed"):
            if hasattr(module, name):
                rule.extra(getattr(module, name))  # N(0, hidden^-0.5) with fan_in, else N(0, std)
        rule.linear(module.qkv)
        rule.linear(module.r)
        rule.linear(module.out, residual=True)
        scale_unscaled_queries(module, module.qkv, rule)


def check_relative(at: Any, heads: int, residual: str) -> list[tuple[tuple[str, ...], str]]:
    """What the relative attention module (compile/relative.py) does not do, as validation errors
    (paths from the block): a sliding window, fewer key/value heads, a q/k norm, parallel sublayers."""
    errs: list[tuple[tuple[str, ...], str]] = []
    if residual == "parallel":
        errs.append((("residual", "kind"), f"{at.kind} attention runs its sublayers one after the other "
                     "(both streams share them); the residual cannot be 'parallel'"))
    if at.window is not None:
        errs.append((("attention", "window"), f"{at.kind} attention has no sliding window; remove `window`"))
    if at.kv_heads != heads:
        errs.append((("attention", "kv_heads"), f"{at.kind} attention has one key/value head per query head: "
                     f"kv_heads must be heads ({heads}), not {at.kv_heads}"))
    if at.qk_norm:
        errs.append((("attention", "qk_norm"), f"{at.kind} attention has no q/k norm; set qk_norm: false"))
    if getattr(at, "softcap", None) is not None:
        errs.append((("attention", "softcap"), f"{at.kind} attention has no score soft-cap; remove `softcap`"))
    return errs


__all__ = ["NonNegInt", "RelativeKind", "check_relative", "TITLES", "aspects", "attention_type", "detail", "flops",
           "init_qk_norm", "options", "qk_norm_params", "scale_unscaled_queries"]
