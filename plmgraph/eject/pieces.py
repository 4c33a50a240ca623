'''The source each block kind writes when a spec is ejected: one function per kind.

A kind's ``eject`` facet (plmgraph/kinds/) calls the function for it here with its node's attrs
and gets a `Piece`: the top-level definitions it needs in the ejected file (a class, a
helper), the expression that constructs its module there, and the config fields that
expression reads. Only the branches the attrs need are written: a LLaMA attention has no
bias, a GPT-2 attention no rotary. `plmgraph.eject.assemble` puts the pieces in order.

Torch-free: this module writes text.
'''

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..kinds.base import NotCompiledYet


@dataclass(frozen=True)
class Piece:
    """What one block kind contributes to an ejected file."""

    defs: tuple[str, ...] = ()
    """Top-level definitions (classes, functions), in order; identical ones are written once."""
    make: str = ""
    """The expression that builds the module; reads ``cfg`` (and ``causal`` in a stack);
    ``{width}`` is the width the assembler gives a norm."""
    config: dict[str, Any] = field(default_factory=dict)
    """Config fields the expression reads: {name: value}."""
    call: str = "{m}({x})"
    """How the module is called in forward: ``{m}`` the module, ``{x}`` its input."""


def refuse(kind: str, why: str) -> NotCompiledYet:
    return NotCompiledYet(f"block kind {kind!r} cannot be ejected yet: {why}")


#: Each activation as the ejected code writes it, on a tensor named by ``{}``.
ACT = {
    "relu": "F.relu({})",
    "gelu": "F.gelu({})",
    "gelu_tanh": 'F.gelu({}, approximate="tanh")',
    "silu": "F.silu({})",
    "tanh": "torch.tanh({})",
    "sigmoid": "torch.sigmoid({})",
    "quick_gelu": "{0} * torch.sigmoid(1.702 * {0})",
}


def act(name: str, x: str) -> str:
    return ACT[name].format(x)


# ------------------------------------------------------------------------------ norms


def layernorm(a: dict[str, Any]) -> Piece:
    bias = "" if a["bias"] else ", bias=False"
    return Piece(make=f"nn.LayerNorm({{width}}, eps=cfg.norm_eps{bias})", config={"norm_eps": a["eps"]})


RMSNORM = '''
class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019): x / rms(x) * {scale}; no centring, no shift."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in fp32 and cast back, as LLaMA and T5 do: squares overflow in half precision
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return {weight} * x.to(dtype)
'''


def rmsnorm(a: dict[str, Any]) -> Piece:
    if a["offset"]:
        code = RMSNORM.format(scale=f"({a['offset']!r} + weight)", weight=f"({a['offset']!r} + self.weight)")
    else:
        code = RMSNORM.format(scale="weight", weight="self.weight")
    return Piece(defs=(code,), make="RMSNorm({width}, cfg.norm_eps)", config={"norm_eps": a["eps"]})


# -------------------------------------------------------------------------- positions


def learned(a: dict[str, Any]) -> Piece:
    offset = f" + {a['offset']}" if a["offset"] else ""
    if a["max_positions"] is None:  # an image model: one row per patch and one for [CLS]
        rows = "(cfg.image_size // cfg.patch_size) ** 2 + 1"
        return Piece(make=f"nn.Embedding({rows}, cfg.embed_dim)", call="{m}(positions)")
    return Piece(make=f"nn.Embedding(cfg.max_positions{offset}, cfg.embed_dim)", call=f"{{m}}(positions{offset})",
                 config={"max_positions": a["max_positions"]})


GLM_2D = '''
class GLM2DPosition(nn.Module):
    """GLM's 2D positions (Du et al. 2022): weight[position in the text] + block_weight[position
    inside the blank span]; a span token takes its [MASK]'s text position, and its span
    position counts 1, 2, ... from the span's [START] (0 over the corrupted text, Part A)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cfg.max_positions, cfg.embed_dim))
        self.block_weight = nn.Parameter(torch.zeros(cfg.max_positions, cfg.embed_dim))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if positions.dim() == 3:  # [B, 2, T]: (text position, span position)
            pos, block = positions[:, 0], positions[:, 1]
        else:  # [B|1, T]: plain text, span position 0
            pos, block = positions, torch.zeros_like(positions)
        return F.embedding(pos, self.weight) + F.embedding(block, self.block_weight)
'''


def glm_2d(a: dict[str, Any]) -> Piece:
    return Piece(defs=(GLM_2D,), make="GLM2DPosition(cfg)", call="{m}(positions)",
                 config={"max_positions": a["max_positions"]})


SINUSOIDAL = '''
class SinusoidalPosition(nn.Module):
    """Fixed positions (Vaswani et al. 2017): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        step = torch.arange(0, self.dim, 2, device=positions.device).float()
        inv = torch.exp(step * (-math.log(10000.0) / self.dim))  # [d/2]
        angle = positions.float()[..., None] * inv  # [B, T, d/2]
        pe = torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(-2)  # [B, T, d]
        return pe[..., : self.dim]
'''


def sinusoidal(a: dict[str, Any]) -> Piece:
    return Piece(defs=(SINUSOIDAL,), make="SinusoidalPosition(cfg.embed_dim)", call="{m}(positions).to(x.dtype)")


ROTARY = '''
class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021, RoFormer): angles position * theta^(-2i/d)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.dim, self.theta = cfg.rotary_dim, cfg.rope_theta
{scaling_init}
    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        step = torch.arange(0, self.dim, 2, device=positions.device).float()
{pre}        inv_freq = 1.0 / ({theta} ** (step / self.dim))  # [d/2]
{scaling}        freqs = positions.float()[..., None] * inv_freq  # [B, T, d/2]
        emb = {emb}  # [B, T, d]
        return {cos}, {sin}  # [B, 1, T, d] each


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate {pairs} of each head of x [B, h, T, d]."""
{body}
'''

_HALVES = '''    rd = cos.shape[-1]
    x1, x2 = x[..., : rd // 2], x[..., rd // 2 : rd]
    turned = torch.cat((-x2, x1), dim=-1)  # [B, h, T, rd]'''
_PAIRS = '''    rd = cos.shape[-1]
    x1, x2 = x[..., 0:rd:2], x[..., 1:rd:2]
    turned = torch.stack((-x2, x1), dim=-1).flatten(-2)  # [B, h, T, rd]'''


def rope(a: dict[str, Any]) -> Piece:
    sc = a.get("scaling")
    inter = a["interleaved"]
    body = _PAIRS if inter else _HALVES
    body += "\n    rot = (x[..., :rd].float() * cos + turned.float() * sin).to(x.dtype)"
    if a["rotary_dim"] < a["head_dim"]:
        body += "\n    return torch.cat((rot, x[..., rd:]), dim=-1)  # the rest pass through"
    else:
        body += "\n    return rot"
    emb = "freqs.repeat_interleave(2, dim=-1)" if inter else "torch.cat((freqs, freqs), dim=-1)"
    pairs = "adjacent pairs (x0, x1), (x2, x3), ..." if inter else "the two halves"
    if a["rotary_dim"] < a["head_dim"]:
        pairs += f" of the first {a['rotary_dim']} dims"
    config = {"rotary_dim": a["rotary_dim"], "rope_theta": a["theta"]}
    scaling, scaling_init, cos, sin = "", "", "emb.cos()[:, None]", "emb.sin()[:, None]"
    if sc:
        config["rope_factor"] = sc["factor"]
        scaling_init = "        self.factor = cfg.rope_factor\n"
        if sc["kind"] != "linear":
            config["rope_original_max_positions"] = sc.get("original_max_positions") or a["max_positions"]
            scaling_init += "        self.original = cfg.rope_original_max_positions\n"
        scaling = ROPE_SCALING.get(sc["kind"], "")
        if sc["kind"] == "llama3":
            config["rope_low_freq_factor"] = sc.get("low_freq_factor") or 1.0
            config["rope_high_freq_factor"] = sc.get("high_freq_factor") or 4.0
            scaling_init += "        self.low, self.high = cfg.rope_low_freq_factor, cfg.rope_high_freq_factor\n"
        if sc["kind"] == "yarn":
            cos, sin = "(emb.cos() * scale)[:, None]", "(emb.sin() * scale)[:, None]"
    dynamic = bool(sc) and sc["kind"] == "dynamic"
    code = ROTARY.format(emb=emb, pairs=pairs, body=body, scaling=scaling, scaling_init=scaling_init, cos=cos,
                         sin=sin, pre=DYNAMIC if dynamic else "", theta="theta" if dynamic else "self.theta")
    return Piece(defs=(code,), make="Rotary(cfg)", config=config, call="{m}(positions)")


#: Dynamic NTK scaling: a larger base once the input outgrows the training context.
DYNAMIC = """        # dynamic NTK (bloc97; HF modeling_rope_utils): past the trained context the base
        # grows with the longest position seen, so the slowest dims stretch, the fastest stay
        theta, seen = self.theta, int(positions.max()) + 1
        if seen > self.original:
            grow = self.factor * seen / self.original - (self.factor - 1)
            theta = theta * grow ** (self.dim / (self.dim - 2))
"""

#: Context scaling of the rotary frequencies, as Hugging Face ``modeling_rope_utils`` does it.
ROPE_SCALING = {
    "linear": "        inv_freq = inv_freq / self.factor  # linear interpolation (Chen et al. 2023)\n",
    "llama3": """        # Llama 3.1: long wavelengths slowed by factor, short kept, a smooth ramp between
        wavelen = 2 * math.pi / inv_freq
        low_wavelen, high_wavelen = self.original / self.low, self.original / self.high
        scaled = torch.where(wavelen > low_wavelen, inv_freq / self.factor, inv_freq)
        smooth = (self.original / wavelen - self.low) / (self.high - self.low)
        smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        inv_freq = torch.where(medium, smoothed, scaled)
""",
    "yarn": """        # YaRN (Peng et al. 2023): interpolate low frequencies, keep high ones, ramp between
        # the dims that turn 32 times and once over the original context
        log_base = 2 * math.log(self.theta)
        lo = math.floor(self.dim * math.log(self.original / (32 * 2 * math.pi)) / log_base)
        hi = math.ceil(self.dim * math.log(self.original / (1 * 2 * math.pi)) / log_base)
        lo, hi = max(lo, 0), min(hi, self.dim - 1)
        hi = hi + 0.001 if lo == hi else hi
        ramp = (torch.arange(self.dim // 2, device=positions.device) - lo) / (hi - lo)
        keep = 1 - ramp.float().clamp(0, 1)
        inv_freq = (inv_freq / self.factor) * (1 - keep) + inv_freq * keep
        scale = 0.1 * math.log(self.factor) + 1.0 if self.factor > 1 else 1.0
""",
}


T5_BIAS = '''
class T5RelativeBias(nn.Module):
    """T5's relative position bias (Raffel et al. 2020): one learned scalar per (bucket, head)
    added to the scores; exact buckets for small distances, log-spaced up to max_distance."""

    def __init__(self, cfg: Config, bidirectional: bool) -> None:
        super().__init__()
        self.bidirectional, self.max_distance = bidirectional, cfg.rel_max_distance
        self.weight = nn.Parameter(torch.zeros(cfg.rel_buckets, cfg.heads))

    def bucket(self, relative: torch.Tensor) -> torch.Tensor:
        buckets, out = self.weight.shape[0], torch.zeros_like(relative)
        if self.bidirectional:  # half the buckets for keys after the query
            buckets //= 2
            out = out + (relative > 0).long() * buckets
            relative = relative.abs()
        else:
            relative = -torch.min(relative, torch.zeros_like(relative))
        exact = buckets // 2
        log = torch.log(relative.float() / exact) / math.log(self.max_distance / exact)
        large = exact + (log * (buckets - exact)).long()
        large = torch.min(large, torch.full_like(large, buckets - 1))
        return out + torch.where(relative < exact, relative, large)

    def forward(self, T: int) -> torch.Tensor:
        pos = torch.arange(T, device=self.weight.device)
        relative = pos[None, :] - pos[:, None]  # [T, T]: key - query
        bias = F.embedding(self.bucket(relative), self.weight)  # [T, T, heads]
        return bias.permute(2, 0, 1)[None]  # [1, heads, T, T]
'''


def t5_relative(a: dict[str, Any]) -> Piece:
    return Piece(defs=(T5_BIAS,), make="T5RelativeBias(cfg, bidirectional={bidirectional})",
                 config={"rel_buckets": a["buckets"], "rel_max_distance": a["max_distance"]}, call="{m}(T)")


ALIBI = '''
class Alibi(nn.Module):
    """ALiBi (Press et al. 2022): -slope * distance added to each head's scores, slopes
    2^(-8i/n); no position parameters, so it extrapolates to longer inputs."""

    def __init__(self, cfg: Config, bidirectional: bool) -> None:
        super().__init__()
        self.heads, self.bidirectional = cfg.heads, bidirectional

    def slopes(self) -> list[float]:
        closest = 2 ** math.floor(math.log2(self.heads))
        base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
        slopes = [base ** (i + 1) for i in range(closest)]
        if closest != self.heads:  # interleave the next power of two's slopes (BLOOM)
            extra = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
            slopes += [extra ** (2 * i + 1) for i in range(self.heads - closest)]
        return slopes

    def forward(self, T: int) -> torch.Tensor:
        pos = torch.arange(T)
        dist = (pos[None, :] - pos[:, None]).float()  # [T, T]: key - query
        dist = {dist}
        slopes = torch.tensor(self.slopes())
        return (slopes[:, None, None] * dist[None])[None]  # [1, heads, T, T]
'''


def alibi(a: dict[str, Any]) -> Piece:
    code = ALIBI.format(dist="-dist.abs() if self.bidirectional else dist")
    return Piece(defs=(code,), make="Alibi(cfg, bidirectional={bidirectional})", call="{m}(T)")


# -------------------------------------------------------------------------- attention

ATTENTION = '''
class {cls}(nn.Module):
    """{doc}"""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
{heads}
{init}
    def forward(
        self,
{args}
    ) -> torch.Tensor:
        B, T, _ = x.shape
{unpack}
{body}
        y = F.scaled_dot_product_attention({sdpa})
        y = y.transpose(1, 2).reshape(B, T, n * d)  # [B, T, n*d]
        return self.out(y)
'''


def _attention(a: dict[str, Any], cross: bool) -> Piece:
    n, kv = a["heads"], a["kv_heads"]
    qk_norm = None
    whole = a.get("qk_norm") and a.get("qk_norm_scope", "head") == "projection"  # OLMo 2: over all of q and of k
    if a.get("qk_norm"):  # the block's norm over each head's dims (OLMo, Qwen3), or over the whole projections
        norm = a["norm"]
        qk_norm = (f"nn.LayerNorm({{w}}, eps=cfg.norm_eps{'' if norm.get('bias', True) else ', bias=False'})"
                   if norm["kind"] == "layernorm" else "RMSNorm({w}, cfg.norm_eps)")
    qb, ob = a["qkv_bias"], a["out_bias"]
    if cross:
        init = [f"self.q = nn.Linear(cfg.hidden, cfg.heads * cfg.head_dim, bias={qb})",
                f"self.kv = nn.Linear(cfg.hidden, 2 * cfg.kv_heads * cfg.head_dim, bias={qb})"]
        body = ["S = memory.shape[1]",
                "q = self.q(x).view(B, T, n, d).transpose(1, 2)  # [B, n, T, d]",
                "k, v = self.kv(memory).view(B, S, 2 * kv, d).transpose(1, 2).chunk(2, dim=1)",
                "# k, v: [B, kv, S, d] each"]
        args = ["x: torch.Tensor", "memory: torch.Tensor", "mask: torch.Tensor | None"]
        doc = "Cross-attention (Vaswani et al. 2017): queries from the decoder, keys and values from\n    " \
              "the encoder output; the rows of kv.weight are [k; v]."
    else:
        init = ["rows = (cfg.heads + 2 * cfg.kv_heads) * cfg.head_dim  # [q; k; v]",
                f"self.qkv = nn.Linear(cfg.hidden, rows, bias={qb})"]
        body = ["q, k, v = self.qkv(x).split([n * d, kv * d, kv * d], dim=-1)",
                "q = q.view(B, T, n, d).transpose(1, 2)  # [B, n, T, d]",
                "k = k.view(B, T, kv, d).transpose(1, 2)  # [B, kv, T, d]",
                "v = v.view(B, T, kv, d).transpose(1, 2)  # [B, kv, T, d]"]
        args = ["x: torch.Tensor", "mask: torch.Tensor"]
        if "interleaved_rotary" in a:  # the stack feeds rotary positions
            args.append("rotary: tuple[torch.Tensor, torch.Tensor]")
            body.append("q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)")
        kinds = "MQA, Shazeer 2019" if kv == 1 else "GQA, Ainslie et al. 2023"
        doc = "Multi-head self-attention (Vaswani et al. 2017); one fused projection whose rows\n    " \
              "are [q; k; v]."
        if kv != n:
            doc = doc[:-1] + f",\n    with {kv} key/value heads shared by groups of query heads ({kinds})."
    init.append(f"self.out = nn.Linear(cfg.heads * cfg.head_dim, cfg.hidden, bias={ob})")
    if qk_norm is not None and whole:
        if cross:
            raise NotCompiledYet("cannot eject a q/k norm over the whole projections (qk_norm_scope 'projection') "
                                 "in cross-attention")
        init += [f"self.q_norm = {qk_norm.format(w='cfg.heads * cfg.head_dim')}",
                 f"self.k_norm = {qk_norm.format(w='cfg.kv_heads * cfg.head_dim')}"]
        body.insert(1, "q, k = self.q_norm(q), self.k_norm(k)  # over the whole projections, before the heads split")
    elif qk_norm is not None:
        init += [f"self.{t}_norm = {qk_norm.format(w='cfg.head_dim')}" for t in ("q", "k")]
        at = next(i for i, line in enumerate(body) if line.startswith(("v = v.view", "# k, v:"))) + 1
        body.insert(at, "q, k = self.q_norm(q), self.k_norm(k)  # per head, before the scores")
    if kv != n:
        body += ["# each key/value head serves n // kv query heads",
                 "k = k.repeat_interleave(n // kv, dim=1)  # [B, n, S, d]",
                 "v = v.repeat_interleave(n // kv, dim=1)  # [B, n, S, d]"]
    sdpa = "q, k, v, attn_mask=mask"
    config: dict[str, Any] = {"heads": n, "kv_heads": kv, "head_dim": a["head_dim"]}
    heads = "        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, cfg.head_dim"
    unpack = "        n, kv, d = self.heads, self.kv_heads, self.head_dim"
    if kv == n:  # multi-head attention: as many key/value heads as query heads
        del config["kv_heads"]
        heads = "        self.heads, self.head_dim = cfg.heads, cfg.head_dim"
        unpack = "        n, d = self.heads, self.head_dim"
        init = [line.replace("(cfg.heads + 2 * cfg.kv_heads)", "3 * cfg.heads").replace("cfg.kv_heads", "cfg.heads")
                for line in init]
        body = [line.replace("[n * d, kv * d, kv * d]", "n * d").replace("2 * kv", "2 * n")
                .replace(", kv, d)", ", n, d)").replace("[B, kv,", "[B, n,") for line in body]
    if a["dropout"]:
        init.append("self.dropout = cfg.attn_dropout")
        sdpa += ", dropout_p=self.dropout if self.training else 0.0"
        config["attn_dropout"] = a["dropout"]
    if a["scale"] is not None:
        sdpa += f", scale={a['scale']!r}"
        if a["scale"] == 1.0:
            body.append("# no 1/sqrt(d) on the scores: T5 folds it into the initialisation")
    code = ATTENTION.format(cls="CrossAttention" if cross else "SelfAttention", doc=doc, heads=heads, unpack=unpack,
                            init="".join(f"        {line}\n" for line in init),
                            args="\n".join(f"        {x}," for x in args),
                            body="\n".join(f"        {line}" for line in body), sdpa=sdpa)
    return Piece(defs=(code,), make=f"{'CrossAttention' if cross else 'SelfAttention'}(cfg)", config=config)


def self_attention(a: dict[str, Any]) -> Piece:
    return _attention(a, cross=False)


def cross_attention(a: dict[str, Any]) -> Piece:
    return _attention(a, cross=True)


# -------------------------------------------------------------------------------- MLPs

DENSE = '''
class MLP(nn.Module):
    """Position-wise feed-forward network (Vaswani et al. 2017): down({act_doc}(up(x)))."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.hidden, cfg.ffn, bias={bias})
        self.down = nn.Linear(cfg.ffn, cfg.hidden, bias={bias})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)  # [B, T, ffn]
        return self.down({act})
'''

GATED = '''
class MLP(nn.Module):
    """{name} (Shazeer 2020, GLU variants): down({act_doc}(gate) * up); gate and up are one
    projection, up.weight = [gate; up]."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.hidden, 2 * cfg.ffn, bias={bias})
        self.down = nn.Linear(cfg.ffn, cfg.hidden, bias={bias})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.up(x).chunk(2, dim=-1)  # [B, T, ffn] each
        return self.down({act} * up)
'''

GATED_NAMES = {"silu": "SwiGLU", "gelu": "GeGLU", "relu": "ReGLU", "sigmoid": "GLU"}


def dense(a: dict[str, Any]) -> Piece:
    code = DENSE.format(act_doc=a["activation"], bias=a["bias"], act=act(a["activation"], "h"))
    return Piece(defs=(code,), make="MLP(cfg)", config={"ffn": a["ffn"]})


def gated(a: dict[str, Any]) -> Piece:
    name = GATED_NAMES.get(a["activation"], "Gated MLP")
    code = GATED.format(name=name, act_doc=a["activation"], bias=a["bias"], act=act(a["activation"], "gate"))
    return Piece(defs=(code,), make="MLP(cfg)", config={"ffn": a["ffn"]})


MOE = '''
class Experts(nn.Module):
    """E expert MLPs ({inner}) stored as stacked weights: up_weight [E, {rows}, H]."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        E, H = cfg.experts, cfg.hidden
        self.up_weight = nn.Parameter(0.02 * torch.randn(E, {up}, H))
        self.down_weight = nn.Parameter(0.02 * torch.randn(E, H, cfg.expert_ffn))
{bias_init}
    def forward(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e on the rows x [N, H]."""
        h = F.linear(x, self.up_weight[e]{up_bias})  # [N, {rows}]
{act}
        return F.linear(h, self.down_weight[e]{down_bias})


class MoE(nn.Module):
    """Sparse mixture of experts (Shazeer et al. 2017; Mixtral, Jiang et al. 2024): a linear
    router sends each token to its top-k experts and mixes their outputs."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.top_k = cfg.top_k
        self.router = nn.Linear(cfg.hidden, cfg.experts, bias={router_bias})
        self.experts = Experts(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # [N, H]
        probs = self.router(x).float().softmax(dim=-1)  # [N, E]; routing in fp32
        weights, chosen = probs.topk(self.top_k, dim=-1)  # [N, k]
{normalize}        weights = weights.to(x.dtype)
        out = torch.zeros_like(x)
        hits = F.one_hot(chosen, self.router.out_features).permute(2, 1, 0)  # [E, k, N]
        for e in range(self.router.out_features):
            slot, token = torch.where(hits[e])
            y = self.experts(e, x[token]) * weights[token, slot, None]
            out.index_add_(0, token, y.to(x.dtype))
        return out.reshape(shape)
'''


def moe(a: dict[str, Any]) -> Piece:
    g = a["expert_kind"] == "gated"
    b = a["expert_bias"]
    if g:
        act_code = ("        gate, up = h.chunk(2, dim=-1)  # [N, ffn] each\n"
                    f"        h = {act(a['expert_activation'], 'gate')} * up")
    else:
        act_code = f"        h = {act(a['expert_activation'], 'h')}"
    up_rows = "2 * cfg.expert_ffn" if g else "cfg.expert_ffn"
    bias_init = (f"        self.up_bias = nn.Parameter(torch.zeros(E, {up_rows}))\n"
                 "        self.down_bias = nn.Parameter(torch.zeros(E, H))\n") if b else ""
    code = MOE.format(
        inner=GATED_NAMES.get(a["expert_activation"], "gated") if g else f"{a['expert_activation']} MLP",
        rows="2*ffn" if g else "ffn", up="2 * cfg.expert_ffn" if g else "cfg.expert_ffn", bias_init=bias_init,
        up_bias=", self.up_bias[e]" if b else "", down_bias=", self.down_bias[e]" if b else "", act=act_code,
        router_bias=a["router_bias"],
        normalize="        weights = weights / weights.sum(dim=-1, keepdim=True)  # renormalise the k\n"
        if a["normalize_top_k"] else "")
    return Piece(defs=(code,), make="MoE(cfg)",
                 config={"experts": a["experts"], "top_k": a["top_k"], "expert_ffn": a["expert_ffn"]})


# -------------------------------------------------------------------------- embeddings


def token(a: dict[str, Any]) -> Piece:
    call = "{m}({x}) * math.sqrt(self.cfg.hidden)" if a.get("scale") else "{m}({x})"
    return Piece(make="nn.Embedding(cfg.vocab, cfg.embed_dim)", config={"vocab": a["vocab"]}, call=call)


def table(a: dict[str, Any]) -> Piece:
    return Piece(make=f"nn.Embedding({a['vocab']}, cfg.embed_dim)")


def project(a: dict[str, Any]) -> Piece:
    return Piece(make="nn.Linear(cfg.embed_dim, cfg.hidden)")


PATCHES = '''
class PatchEmbedding(nn.Module):
    """ViT (Dosovitskiy et al. 2021): p x p patches, linearly embedded (a strided conv){cls_doc}."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.patch = cfg.patch_size
        shape = (cfg.embed_dim, cfg.channels, cfg.patch_size, cfg.patch_size)
        self.weight = nn.Parameter(0.02 * torch.randn(shape))
        self.bias = nn.Parameter(torch.zeros(cfg.embed_dim))
{cls_init}
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(pixels, self.weight, self.bias, stride=self.patch)  # [B, E, h, w]
        x = x.flatten(2).transpose(1, 2)  # [B, N, E]
{cls_fwd}        return x
'''


def patches(a: dict[str, Any]) -> Piece:
    cls = a["cls_token"]
    code = PATCHES.format(
        cls_doc=", with a learned [CLS] in front" if cls else "",
        cls_init="        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))\n" if cls else "",
        cls_fwd="        cls = self.cls.expand(x.shape[0], -1, -1)\n"
        "        x = torch.cat((cls, x), dim=1)  # [B, N+1, E]\n" if cls else "")
    return Piece(defs=(code,), make="PatchEmbedding(cfg)",
                 config={"image_size": a["image_size"], "patch_size": a["patch_size"], "channels": a["channels"]})


# ------------------------------------------------------------------------ pool, heads


def pooler(a: dict[str, Any], kind: str) -> Piece:
    """The pooler as a small class: first token, masked mean or last kept token (+ dense, act)."""
    pick = {
        "cls": ["x = h[:, 0]  # [B, H]: the first ([CLS]) token"],
        "mean": ["if mask is None:", "    x = h.mean(dim=1)", "else:",
                 "    m = mask[:, :, None].to(h.dtype)  # [B, T, 1]", "    x = (h * m).sum(1) / m.sum(1).clamp(min=1)"],
        "last": ["if mask is None:", "    x = h[:, -1]", "else:",
                 "    last = mask.long().sum(1).clamp(min=1) - 1  # [B]: last kept token",
                 "    x = h[torch.arange(h.shape[0], device=h.device), last]"],
    }[kind]
    lines = [*pick, f"return {act(a['activation'], 'self.dense(x)')}" if a["dense"] else "return x"]
    init = "        self.dense = nn.Linear(cfg.hidden, cfg.hidden)\n" if a["dense"] else ""
    body = "\n".join(f"        {line}" for line in lines)
    doc = {"cls": "the first token", "mean": "the mean of the kept tokens", "last": "the last kept token"}[kind]
    code = (f'\nclass Pooler(nn.Module):\n    """[B, T, H] -> [B, H]: {doc}'
            + (f', then dense + {a["activation"]} (BERT)' if a["dense"] else "") + '."""\n\n'
            "    def __init__(self, cfg: Config) -> None:\n        super().__init__()\n" + init + "\n"
            "    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:\n" + body + "\n")
    return Piece(defs=(code,), make="Pooler(cfg)", call="{m}({x}, {mask})")


def classifier(a: dict[str, Any]) -> Piece:
    return Piece(make=f"nn.Linear(cfg.hidden, {a['labels']}, bias={a['bias']})")


def lm_head(a: dict[str, Any], kind: str) -> Piece:
    """A vocabulary head: [transform ->] projection, tied (reads the embedding) or its own."""
    tied, tr = a["tie_embeddings"], a["transform"]
    cls = "MLMHead" if kind == "mlm" else "LMHead"
    init, body = [], []
    doc = ("Masked-token head (Devlin et al. 2019, BERT)" if kind == "mlm" else "Next-token head") + ": "
    if tr is not None:
        init.append(f"self.transform = nn.Linear(cfg.hidden, {'cfg.embed_dim' if tied else 'cfg.hidden'})")
        body.append(f"h = {act(tr['activation'], 'self.transform(h)')}")
        doc += f"dense, {tr['activation']}" + (", norm, " if tr["norm"] else ", ")
        if tr["norm"]:
            norm = a["norm"]
            width = "cfg.embed_dim" if tied else "cfg.hidden"
            if norm["kind"] == "layernorm":
                bias = "" if norm.get("bias", True) else ", bias=False"
                init.append(f"self.norm = nn.LayerNorm({width}, eps=cfg.norm_eps{bias})")
            else:
                init.append(f"self.norm = RMSNorm({width}, cfg.norm_eps)")
            body.append("h = self.norm(h)")
    if tied and a["scale_tied"]:
        body.append("h = h * self.scale  # T5 rescales before the tied projection")
        init.append("self.scale = cfg.hidden**-0.5")
    if not tied:
        init.append("self.proj = nn.Linear(cfg.hidden, cfg.vocab, bias=False)")
    if a["bias"]:
        init.append("self.bias = nn.Parameter(torch.zeros(cfg.vocab))")
    weight = "weight" if tied else "self.proj.weight"
    body.append(f"return F.linear(h, {weight}{', self.bias' if a['bias'] else ''})  # [B, T, vocab]")
    doc += "tied to the token embedding" if tied else "its own projection"
    args = "h: torch.Tensor, weight: torch.Tensor" if tied else "h: torch.Tensor"
    code = (f'\nclass {cls}(nn.Module):\n    """{doc}."""\n\n'
            "    def __init__(self, cfg: Config) -> None:\n        super().__init__()\n"
            + "".join(f"        {line}\n" for line in init) + "\n"
            f"    def forward(self, {args}) -> torch.Tensor:\n" + "".join(f"        {line}\n" for line in body))
    return Piece(defs=(code,), make=f"{cls}(cfg)", call="{m}({x}, self.embed.token.weight)" if tied else "{m}({x})")


# ----------------------------------------------------------- relative attention (XL, XLNet)

XL_RELATIVE = '''
class XLRelative(nn.Module):
    """Transformer-XL's relative positions (Dai et al. 2019): sinusoids of the distances
    S, S-1, ..., 1-T between a query and the keys [memory; current]; no parameters."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.dim = cfg.hidden
{clamp_init}
    def forward(self, T: int, S: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(S, -T, -1, device=device, dtype=torch.float32)  # [S + T]
{clamp}        step = torch.arange(0, self.dim, 2, device=device, dtype=torch.float32)
        angle = pos[:, None] / 10000 ** (step / self.dim)  # [S + T, H/2]
        return torch.cat((angle.sin(), angle.cos()), dim=-1)  # [S + T, H]


def rel_shift(x: torch.Tensor, S: int) -> torch.Tensor:
    """Scores over distances [B, n, T, T + S] -> over keys [B, n, T, S]: row i moves left
    by T - i, so column j holds distance (S - T) + i - j (HF rel_shift_bnij)."""
    B, n, T, P = x.shape
    return x.reshape(B, n, T * P)[..., T:].reshape(B, n, T, P - 1)[..., :S]
'''


def xl_relative(a: dict[str, Any]) -> Piece:
    clamp = a.get("clamp")
    code = XL_RELATIVE.format(
        clamp_init="        self.clamp = cfg.rel_clamp  # distances beyond it read as it\n" if clamp else "",
        clamp="        pos = pos.clamp(-self.clamp, self.clamp)\n" if clamp else "")
    return Piece(defs=(code,), make="XLRelative(cfg)", config={"rel_clamp": clamp} if clamp else {})


RELATIVE = '''
class RelativeAttention(nn.Module):
    """{doc}

    score(i, j) = (q_i + u) . k_j                        content
                + (q_i + v) . W_r R(i - j)               position (R: XLRelative)
{seg_doc}    all times head_dim ** -0.5; keys and values are [memory; current]."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        n, d, H = cfg.heads, cfg.head_dim, cfg.hidden
        self.heads, self.head_dim = n, d
{dropout_init}        self.qkv = nn.Linear(H, 3 * n * d, bias=False)  # rows [q; k; v]
        self.r = nn.Linear(H, n * d, bias=False)  # W_r: projects the position encodings
        self.r_w_bias = nn.Parameter(torch.zeros(n, d))  # u
        self.r_r_bias = nn.Parameter(torch.zeros(n, d))  # v
{seg_init}        self.out = nn.Linear(n * d, H, bias=False)

    def split(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        return F.linear(x, w).view(B, L, self.heads, self.head_dim).transpose(1, 2)  # [B, n, L, d]

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kr: torch.Tensor,
        mask: torch.Tensor,
{seg_arg}    ) -> torch.Tensor:
        """q [B, n, T, d], k and v [B, n, S, d], kr [n, T + S, d], mask [B|1, 1, T, S]."""
        pos = rel_shift((q + self.r_r_bias[:, None]) @ kr.transpose(-1, -2), k.shape[2])
{seg_body}        scale = {scale}
        bias = pos * scale + mask  # [B, n, T, S]: SDPA adds it to the content term
        q = q + self.r_w_bias[:, None]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale{dropout})

    def forward(
        self,
{args}
    ){ret}:
        B, T, _ = h.shape
        nd = self.heads * self.head_dim
        wq, wk, wv = self.qkv.weight.split(nd)
        cat = h if mem is None else torch.cat((mem, h), dim=1)  # [B, S, H]
        k, v = self.split(cat, wk), self.split(cat, wv)  # [B, n, S, d]
        kr = self.r(pos).view(-1, self.heads, self.head_dim).transpose(0, 1)  # [n, T+S, d]
        y = self.attend(self.split(h, wq), k, v, kr, mask{seg_pass})  # [B, n, T, d]
        y = self.out(y.transpose(1, 2).reshape(B, T, nd))  # [B, T, H]
{two_stream}'''

_TWO_STREAM = '''        if g is None:
            return y, None
        # the query stream: its P queries placed at the positions they predict, T of them
        target_mapping = target_mapping.to(g.dtype)  # [B, P, T]
        qg = torch.einsum("bnpd,bpt->bntd", self.split(g, wq), target_mapping)
        yg = self.attend(qg, k, v, kr, mask_g, seg)  # [B, n, T, d]
        yg = torch.einsum("bntd,bpt->bnpd", yg, target_mapping)  # [B, n, P, d]
        return y, self.out(yg.transpose(1, 2).reshape(B, g.shape[1], nd))
'''


def relative_attention(a: dict[str, Any], two_stream: bool) -> Piece:
    if two_stream:
        doc = ("XLNet's two-stream relative attention (Yang et al. 2019): Transformer-XL's terms plus\n"
               "    a segment term, for the content stream h and the query stream g (same weights).")
        seg_doc = "                + (q_i + s) . seg_embed[i, j in different segments]\n"
        seg_init = ("        self.r_s_bias = nn.Parameter(torch.zeros(n, d))  # s\n"
                    "        self.seg_embed = nn.Parameter(torch.zeros(2, n, d))  # same, different segment\n")
        seg_body = ("        if seg is not None:  # seg [B, 1, T, S]: query and key in different segments\n"
                    '            ef = torch.einsum("bntd,snd->bnts", q + self.r_s_bias[:, None], self.seg_embed)\n'
                    "            pos = pos + torch.where(seg, ef[..., 1:], ef[..., :1])\n")
        args = ["h: torch.Tensor", "mem: torch.Tensor | None", "pos: torch.Tensor", "mask: torch.Tensor",
                "seg: torch.Tensor | None", "g: torch.Tensor | None", "mask_g: torch.Tensor",
                "target_mapping: torch.Tensor | None"]
        ret = " -> tuple[torch.Tensor, torch.Tensor | None]"
    else:
        doc = ("Transformer-XL's relative attention (Dai et al. 2019) over a segment memory: the\n"
               "    previous segments' layer inputs, cached, extend the keys and values.")
        seg_doc, seg_init, seg_body = "", "", ""
        args = ["h: torch.Tensor", "mem: torch.Tensor | None", "pos: torch.Tensor", "mask: torch.Tensor"]
        ret = " -> torch.Tensor"
    config: dict[str, Any] = {"heads": a["heads"], "head_dim": a["head_dim"]}
    if a["dropout"]:
        config["attn_dropout"] = a["dropout"]
    code = RELATIVE.format(
        doc=doc, seg_doc=seg_doc, seg_init=seg_init, seg_body=seg_body,
        seg_arg="        seg: torch.Tensor | None,\n" if two_stream else "", seg_pass=", seg" if two_stream else "",
        scale="self.head_dim**-0.5" if a["scale"] is None else repr(a["scale"]),
        dropout_init="        self.dropout = cfg.attn_dropout\n" if a["dropout"] else "",
        dropout=", dropout_p=self.dropout if self.training else 0.0" if a["dropout"] else "",
        args="\n".join(f"        {x}," for x in args), ret=ret,
        two_stream=_TWO_STREAM if two_stream else "        return y\n")
    return Piece(defs=(code,), make="RelativeAttention(cfg)", config=config)


MASK_TOKEN = '''
class MaskToken(nn.Module):
    """XLNet's mask embedding: one learned vector that starts the query stream g, so a
    position being predicted knows where it is but not which token it holds."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
'''


def mask_token(a: dict[str, Any]) -> Piece:
    return Piece(defs=(MASK_TOKEN,), make="MaskToken(cfg)")


# ------------------------------------------------------------ DeBERTa's disentangled attention

DISENTANGLED_TABLE = '''
class DisentangledRelative(nn.Module):
    """DeBERTa's relative embeddings (He et al. 2021), one table of 2k rows shared by every layer,
    and the index delta(i, j) = clamp(bucket(i - j) + k, 0, 2k - 1) with log buckets past k/2."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.buckets, self.span = cfg.rel_buckets, cfg.rel_span
        self.weight = nn.Parameter(torch.zeros(2 * cfg.rel_span, cfg.hidden))
{norm_init}{log_init}
    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(positions.shape[-1], device=positions.device)
        rel = pos[:, None] - pos[None, :]  # i - j
{bucket}        index = (rel + self.span).clamp(0, 2 * self.span - 1)
        return {table}, index
'''

_BUCKET = """        mid = self.buckets // 2
        sign = torch.sign(rel)
        abs_pos = torch.where((rel < mid) & (rel > -mid), torch.full_like(rel, mid - 1), rel.abs())
        log_pos = (
            torch.ceil(torch.log(abs_pos / mid) / self.log_range * (mid - 1)) + mid
        )
        rel = torch.where(abs_pos <= mid, rel.to(log_pos.dtype), log_pos * sign).long()
"""


def disentangled_table(a: dict[str, Any]) -> Piece:
    span = a["buckets"] or a["max_distance"]
    config: dict[str, Any] = {"rel_buckets": a["buckets"] or 0, "rel_span": span}
    norm_init = log_init = ""
    if a["norm"] is not None:
        bias = "" if a["norm"].get("bias", True) else ", bias=False"
        norm_init = f"        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.rel_norm_eps{bias})\n"
        config["rel_norm_eps"] = a["norm"]["eps"]
    if a["buckets"]:
        config["rel_max_distance"] = a["max_distance"]
        log_init = ("        # HF's fp32 log((max_distance - 1) / mid): the same number, so each ceil() lands alike\n"
                    "        mid = cfg.rel_buckets // 2\n"
                    "        self.log_range = float(torch.log(torch.tensor((cfg.rel_max_distance - 1) / mid, "
                    "device=\"cpu\")))\n")
    code = DISENTANGLED_TABLE.format(norm_init=norm_init, log_init=log_init, bucket=_BUCKET if a["buckets"] else "",
                                     table="self.norm(self.weight)" if a["norm"] is not None else "self.weight")
    return Piece(defs=(code,), make="DisentangledRelative(cfg)", config=config, call="{m}(positions)")


DISENTANGLED = '''
class DisentangledAttention(nn.Module):
    """DeBERTa's disentangled attention (He et al. 2021): content and relative-position terms,
    (q.k + {terms}) / sqrt(d * {factor}); rows of qkv.weight are [q; k; v]."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.heads * cfg.head_dim, bias={qb})
{own}        self.out = nn.Linear(cfg.heads * cfg.head_dim, cfg.hidden, bias={ob})
{drop_init}
    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        B, T, _ = x.shape
        n, d = self.heads, self.head_dim
        q, k, v = self.qkv(x).split(n * d, dim=-1)
        q = q.view(B, T, n, d).transpose(1, 2)  # [B, n, T, d]
        k = k.view(B, T, n, d).transpose(1, 2)
        v = v.view(B, T, n, d).transpose(1, 2)
        table, index = rotary  # [2k, H], [T, T]
{table_drop}{proj}        bias = torch.zeros((), dtype=q.dtype, device=q.device)
{terms_body}        scale = 1.0 / math.sqrt(d * {factor})
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias * scale + mask, scale=scale{sdpa_drop})
        return self.out(y.transpose(1, 2).reshape(B, T, n * d))
'''


def disentangled_attention(a: dict[str, Any]) -> Piece:
    c2p, p2c, share, qb = a["c2p"], a["p2c"], a["share_keys"], a["qkv_bias"]
    factor = 1 + int(c2p) + int(p2c)
    own = ""
    if not share:
        own = "".join(f"        self.{p} = nn.Linear(cfg.hidden, cfg.heads * cfg.head_dim, bias={qb})\n"
                      for p, on in (("pos_k", c2p), ("pos_q", p2c)) if on)
    if share:
        proj = ("        pq, pk, _ = self.qkv(table).split(n * d, dim=-1)  # the layer's own q, k projections\n"
                "        pq, pk = pq.view(-1, n, d).transpose(0, 1), pk.view(-1, n, d).transpose(0, 1)  # [n, 2k, d]\n")
    else:
        proj = "".join(f"        {t} = self.{p}(table).view(-1, n, d).transpose(0, 1)  # [n, 2k, d]\n"
                       for t, p, on in (("pk", "pos_k", c2p), ("pq", "pos_q", p2c)) if on)
    body = ""
    if c2p:
        body += ("        # content-to-position: q_i . Kr[delta(i, j)]\n"
                 "        bias = bias + torch.gather(q @ pk.transpose(-1, -2), -1, index.expand(B, n, T, T))\n")
    if p2c:
        body += ("        # position-to-content: k_j . Qr[delta(i, j)] (gathered by the transposed index)\n"
                 "        p2c = torch.gather(k @ pq.transpose(-1, -2), -1, index.t().expand(B, n, T, T))\n"
                 "        bias = bias + p2c.transpose(-1, -2)\n")
    config: dict[str, Any] = {"heads": a["heads"], "head_dim": a["head_dim"]}
    drop_init = table_drop = sdpa_drop = ""
    if a["dropout"]:
        drop_init += "        self.dropout = cfg.attn_dropout\n"
        sdpa_drop = ", dropout_p=self.dropout if self.training else 0.0"
        config["attn_dropout"] = a["dropout"]
    if a["position_dropout"]:
        drop_init += "        self.table_dropout = cfg.rel_dropout\n"
        table_drop = "        table = F.dropout(table, self.table_dropout, self.training)\n"
        config["rel_dropout"] = a["position_dropout"]
    terms = " + ".join(t for t, on in (("q.Kr", c2p), ("k.Qr", p2c)) if on)
    code = DISENTANGLED.format(terms=terms, factor=factor, qb=qb, ob=a["out_bias"], own=own, drop_init=drop_init,
                               table_drop=table_drop, proj=proj, terms_body=body, sdpa_drop=sdpa_drop)
    return Piece(defs=(code,), make="DisentangledAttention(cfg)", config=config)
