"""ViT's patch embedding (Dosovitskiy et al. 2020): non-overlapping p×p patches, linearly
embedded (a strided convolution), with an optional learned [CLS] vector in front.

Attrs: ``patch_size``, ``image_size``, ``channels``, ``cls_token``, ``dim`` (the embedding width).
"""

from __future__ import annotations

from ..base import Aspect, Attrs, Kind, Shape, mm, onoff, register


@register
class PatchesKind(Kind):
    name = "embedding/patches"

    def params(self, a: Attrs) -> dict[str, Shape]:
        E, p = a["dim"], a["patch_size"]
        return {"weight": (E, a["channels"], p, p), "bias": (E,), **({"cls": (1, 1, E)} if a["cls_token"] else {})}

    def flops(self, a: Attrs, params: dict[str, Shape], T: int) -> int:
        return mm(params, "weight")

    def words(self, a: Attrs) -> str:
        return "patch embedding"

    def aspects(self, a: Attrs, role: str) -> list[Aspect]:
        return [
            Aspect("patches", f"{a['patch_size']}×{a['patch_size']} of {a['image_size']}px, {a['channels']} channels"),
            Aspect("[CLS] token", onoff(a["cls_token"]), a["cls_token"]),
        ]

    def label(self, a: Attrs) -> tuple[str, str]:
        cls = " + [CLS]" if a["cls_token"] else ""
        return "Patch embedding", f"{a['patch_size']}×{a['patch_size']} patches{cls}"

    def build(self, node):  # noqa: ANN001, ANN201
        from ...compile.embedding import PatchEmbedding

        return PatchEmbedding(node["channels"], node["dim"], node["patch_size"], node["cls_token"])

    def init(self, module, rule) -> None:  # noqa: ANN001
        rule.weight(module.weight, module.weight[0].numel())  # fan-in: channels × p × p
        rule.zeros(module.bias)
        if module.cls_token:
            rule.normal(module.cls, rule.std)  # N(0, std) under either scheme

    def explain(self, lang: str) -> str:
        return self.explained(
            lang,
            en="Patch embedding (ViT): cut the image into `N = HW/P²` patches of `P×P` pixels, flatten each and "
            "project it to width d (a convolution with stride P), prepend a learned [CLS] token and add "
            "positions: `z₀ = [x_cls; x¹E; …; xᴺE] + E_pos`.",
            zh="图像块嵌入（ViT）：把图像切成 `N = HW/P²` 个 `P×P` 的小块，每块展平后线性映射到 d "
            "维（等价于步长为 P 的卷积），在最前面加一个可学习的 [CLS] token，再加上位置嵌入：`z₀ = [x_cls; "
            "x¹E; …; xᴺE] + E_pos`。",
        )

    def eject(self, a):  # noqa: ANN001, ANN201
        from ...eject.pieces import patches

        return patches(a)
