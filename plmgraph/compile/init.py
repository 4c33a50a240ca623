"""Random initialisation: the spec's typed `init` scheme, applied by each block kind's `init` facet.

``init: {kind: normal, std, scaled_residual}`` (BERT, GPT, LLaMA, ...): every weight ~ N(0, std),
and with `scaled_residual` (GPT-2) the projections that write into the residual stream get
std / sqrt(2 * layers).  ``init: {kind: fan_in}`` (T5): a weight with fan-in F ~ N(0, F**-0.5),
embeddings ~ N(0, 1), relative biases ~ N(0, hidden**-0.5), and where attention scores are not
scaled (scale 1.0) the query rows get another head_dim**-0.5 (the attention kinds' init).
Biases start at 0 and norm scales at 1 in both.
"""

from __future__ import annotations

from torch import Tensor, nn


class InitRule:
    """What a kind's ``init`` facet initialises with: the spec's scheme, seen from one graph node.

    A kind calls ``rule.linear(m, residual=True)``, ``rule.table(t)``, ``rule.ones(t)``, ... and
    never reads the spec; ``rule.attrs`` / ``rule.role`` are its node's, ``rule.sibling(role)`` is
    another module of the same layer (DeepNorm scales its sublayer's weights).
    """

    def __init__(self, model: nn.Module, *, std: float, resid_std: float, fan_in: bool, hidden: int,
                 generator=None) -> None:  # noqa: ANN001
        self.model, self.std, self.resid_std, self.fan_in, self.hidden = model, std, resid_std, fan_in, hidden
        self.generator = generator
        self.node, self.attrs, self.role = "", {}, ""

    def at(self, node: str, attrs: dict, role: str) -> InitRule:
        self.node, self.attrs, self.role = node, attrs, role
        return self

    def sibling(self, role: str) -> nn.Module:
        return self.model.get_submodule(self.node.rsplit(".", 1)[0] + "." + role)

    def normal(self, t: Tensor, std: float) -> None:
        nn.init.normal_(t, 0.0, std, generator=self.generator)

    def weight(self, t: Tensor, fan_in: int, *, residual: bool = False) -> None:
        """A projection weight: N(0, fan_in^-0.5) with fan_in init, else N(0, std) (depth-scaled
        when it writes into the residual stream and the scheme scales those)."""
        self.normal(t, fan_in**-0.5 if self.fan_in else (self.resid_std if residual else self.std))

    def linear(self, m: nn.Linear, *, residual: bool = False) -> None:
        self.weight(m.weight, m.in_features, residual=residual)
        if m.bias is not None:
            nn.init.zeros_(m.bias)

    def table(self, t: Tensor) -> None:
        """An embedding table: N(0, 1) with fan_in init (T5), else N(0, std)."""
        self.normal(t, 1.0 if self.fan_in else self.std)

    def extra(self, t: Tensor) -> None:
        """A learned bias-like tensor (relative biases): N(0, hidden^-0.5) with fan_in, else N(0, std)."""
        self.normal(t, self.hidden**-0.5 if self.fan_in else self.std)

    def ones(self, t: Tensor) -> None:
        nn.init.ones_(t)

    def zeros(self, t: Tensor) -> None:
        nn.init.zeros_(t)

    def constant(self, t: Tensor, value: float) -> None:
        nn.init.constant_(t, value)
