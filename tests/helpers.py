"""Shared test helpers: `tiny(spec)` shrinks any spec to a model that runs in milliseconds.

Usable from any test (``tests/`` is on ``sys.path`` through ``tests/conftest.py``)::

    from helpers import tiny
    model = pg.build(tiny("llama2-7b"))
"""

from __future__ import annotations

from typing import Any

from plmgraph.spec import ModelSpec, load_spec, validate
from plmgraph.spec.extends import Merged

HIDDEN, HEADS, HEAD_DIM, FFN, VOCAB, LAYERS, POSITIONS = 64, 4, 16, 128, 128, 2, 64


def tiny(spec: Any, **sizes: int) -> ModelSpec:
    """Shrink a spec (zoo name, path or ModelSpec) keeping its architecture: 2 layers, hidden 64,
    4 heads of 16 (GQA/MQA kept as 2/1 kv heads), ffn 128, vocab 128, 64 positions, 4 experts,
    32x32 images of 8x8 patches, factorised embeddings of 32.  `sizes` overrides those numbers
    (``tiny("gpt2", layers=3)``)."""
    spec = load_spec(spec)
    s = spec.sizes
    n = {"hidden": HIDDEN, "heads": HEADS, "ffn": FFN, "vocab": VOCAB, "layers": LAYERS, "max_positions": POSITIONS}
    n.update(sizes)
    data = spec.model_dump(mode="json", exclude_none=True, exclude={"extends"})
    data["sizes"] = {k: n[k] for k in data["sizes"]}
    emb = data["embeddings"]
    emb["size"] = n["hidden"] if emb.get("size") == s.hidden else n["hidden"] // 2
    if "patches" in emb:
        emb["patches"].update(image_size=32, patch_size=8)
    pos = data["position"]
    if pos.get("scaling", {}).get("original_max_positions"):
        pos["scaling"]["original_max_positions"] = n["max_positions"] // 2
    if data.get("sharing", {}).get("groups"):
        data["sharing"]["groups"] = 1
    for stack in ("encoder", "decoder"):
        if stack in data:
            data[stack]["layers"] = n["layers"]
    for block in _blocks(data):
        at = block.get("attention", {})
        heads = s.heads
        at["head_dim"] = n["hidden"] // n["heads"] if at.get("head_dim") == s.hidden // s.heads else HEAD_DIM
        kv = at.get("kv_heads", heads)
        at["kv_heads"] = n["heads"] if kv == heads else (1 if kv == 1 else 2)
        if at.get("window"):
            at["window"] = 8
        mlp = block.get("mlp", {})
        if mlp.get("kind") == "moe":
            mlp["experts"] = 4
            mlp["top_k"] = min(mlp.get("top_k", 2), 2)
            mlp.get("expert", {})["ffn"] = n["ffn"] // 2
        elif "ffn" in mlp:
            mlp["ffn"] = n["ffn"]
    return validate(Merged(data, file=f"tiny({spec.name})"))


def _blocks(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [data["block"]] + [data[s]["block"] for s in ("encoder", "decoder") if s in data and "block" in data[s]]
