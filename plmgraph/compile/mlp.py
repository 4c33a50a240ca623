"""Feed-forward layers: dense, gated (SwiGLU/GeGLU) and a sparse mixture of experts.

Gated MLPs keep gate and up in one projection: ``up.weight`` is ``[gate; up]`` stacked
along dim 0 (``2 * ffn`` rows), so ``down(act(gate) * up)`` costs one matmul for both.
Experts are stored stacked (``experts.up_weight [E, up_rows, H]``,
``experts.down_weight [E, H, ffn]``) and routed like Mixtral: softmax over all experts,
top-k, optional renormalisation of the k weights.

The layer library only: the kinds in plmgraph/kinds/mlp/ build these modules from graph nodes
and initialise them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import activation


class DenseMLP(nn.Module):
    """down(act(up(x)))."""

    def __init__(self, hidden: int, ffn: int, act: str, bias: bool = True) -> None:
        super().__init__()
        self.act = activation(act)
        self.up = nn.Linear(hidden, ffn, bias=bias)
        self.down = nn.Linear(ffn, hidden, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.act(self.up(x)))

    def update_weights(self) -> list[Tensor]:
        """The weights that write this sublayer's update (DeepNorm scales them by β at init)."""
        return [self.up.weight, self.down.weight]


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)), gate and up fused in `up`."""

    def __init__(self, hidden: int, ffn: int, act: str, bias: bool = False) -> None:
        super().__init__()
        self.act = activation(act)
        self.up = nn.Linear(hidden, 2 * ffn, bias=bias)
        self.down = nn.Linear(ffn, hidden, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.up(x).chunk(2, dim=-1)  # [..., ffn] each
        return self.down(self.act(gate) * up)

    def update_weights(self) -> list[Tensor]:
        """The weights that write this sublayer's update (DeepNorm scales them by β at init)."""
        return [self.up.weight, self.down.weight]


class Experts(nn.Module):
    """E expert MLPs as stacked weights; `forward(e, x)` runs expert e on the rows x [N, H]."""

    def __init__(self, n: int, hidden: int, ffn: int, act: str, gated: bool, bias: bool) -> None:
        super().__init__()
        self.act, self.gated = activation(act), gated
        up = 2 * ffn if gated else ffn
        self.up_weight = nn.Parameter(torch.empty(n, up, hidden))
        self.down_weight = nn.Parameter(torch.empty(n, hidden, ffn))
        if bias:
            self.up_bias = nn.Parameter(torch.zeros(n, up))
            self.down_bias = nn.Parameter(torch.zeros(n, hidden))
        self.bias = bias

    def forward(self, e: int, x: Tensor) -> Tensor:
        h = F.linear(x, self.up_weight[e], self.up_bias[e] if self.bias else None)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            h = self.act(gate) * up
        else:
            h = self.act(h)
        return F.linear(h, self.down_weight[e], self.down_bias[e] if self.bias else None)


class MoE(nn.Module):
    """Sparse MoE (Shazeer et al. 2017; Mixtral): each token runs its top-k experts.

    Routing softmax runs in fp32, as in HF Mixtral.  Tokens are gathered per expert (a loop
    over the E experts with data-dependent sizes): exact and cheap, but not exportable with
    dynamic shapes; the load-balancing loss (``aux_loss``) is not computed yet (`build` refuses a
    spec that sets it, see plmgraph/kinds/mlp/moe.py).
    """

    def __init__(self, hidden: int, experts: Experts, n: int, top_k: int, normalize: bool,
                 router_bias: bool, shared: nn.Module | None = None, shared_gate: bool = False) -> None:
        super().__init__()
        self.top_k, self.normalize, self.n = top_k, normalize, n
        self.router = nn.Linear(hidden, n, bias=router_bias)
        self.experts = experts
        # A shared expert every token runs (Qwen2-MoE, DeepSeekMoE), optionally scaled by sigmoid(x·w_g).
        self.shared = shared
        self.shared_gate = nn.Linear(hidden, 1, bias=False) if shared is not None and shared_gate else None

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # [N, H]
        logits = self.router(x)  # [N, E]
        probs = logits.float().softmax(dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)  # [N, k]
        if self.normalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights.to(x.dtype)
        out = torch.zeros_like(x)
        hits = F.one_hot(chosen, self.n).permute(2, 1, 0)  # [E, k, N]
        for e in range(self.n):
            slot, token = torch.where(hits[e])
            y = self.experts(e, x[token]) * weights[token, slot, None]
            out.index_add_(0, token, y.to(x.dtype))
        if self.shared is not None:
            y = self.shared(x)
            if self.shared_gate is not None:
                y = torch.sigmoid(self.shared_gate(x)) * y
            out = out + y
        return out.reshape(shape)

    def update_weights(self) -> list[Tensor]:
        """The experts' weights, which write this sublayer's update (DeepNorm scales them by β at init)."""
        shared = [self.shared.up.weight, self.shared.down.weight] if self.shared is not None else []
        return [self.experts.up_weight, self.experts.down_weight, *shared]
