"""Shared test helpers: `tiny(spec)` shrinks any spec to a model that runs in milliseconds.

Usable from any test (``tests/`` is on ``sys.path`` through ``tests/conftest.py``)::

    from helpers import tiny
    model = pg.build(tiny("llama2-7b"))
"""

from __future__ import annotations

import copy
from typing import Any

from plmgraph.spec import ModelSpec, load_spec, validate
from plmgraph.spec.extends import Merged

HIDDEN, HEADS, HEAD_DIM, FFN, VOCAB, LAYERS, POSITIONS = 64, 4, 16, 128, 128, 2, 64


def tiny(spec: Any, **sizes: int) -> ModelSpec:
    """Shrink a spec (zoo name, path or ModelSpec) keeping its architecture: 2 layers, hidden 64,
    4 heads of 16 (GQA/MQA kept as 2/1 kv heads), ffn 128, vocab 128, 64 positions, 4 experts,
    32x32 images of 8x8 patches, factorised embeddings of 32.  `sizes` overrides those numbers
    (``tiny("gpt2", layers=3)``).

    It edits the spec *as written* (after `extends`), so derived values stay derived and
    overrides on the result (``load_spec(tiny(...), "attention.mask=causal")``) reach every stack.
    """
    spec = load_spec(spec)
    s = spec.sizes
    n = {"hidden": HIDDEN, "heads": HEADS, "ffn": FFN, "vocab": VOCAB, "layers": LAYERS, "max_positions": POSITIONS}
    n.update(sizes)
    written = spec._merged.data if spec._merged is not None else spec.model_dump(mode="json", exclude_unset=True)
    data = copy.deepcopy({k: v for k, v in written.items() if k != "extends"})
    data["sizes"] = {k: n[k] for k in data["sizes"] if k in n}
    emb = data.setdefault("embeddings", {})
    if emb.get("size") not in (None, s.hidden):
        emb["size"] = n["hidden"] // 2
    if "patches" in emb:
        emb["patches"] = {**emb["patches"], "image_size": 32, "patch_size": 8}
    pos = data.get("position", {})
    if (pos.get("scaling") or {}).get("original_max_positions"):
        pos["scaling"]["original_max_positions"] = n["max_positions"] // 2
    if data.get("sharing", {}).get("groups"):
        data["sharing"]["groups"] = 1
    for stack in ("encoder", "decoder"):
        if isinstance(data.get(stack), dict) and "layers" in data[stack]:
            data[stack]["layers"] = n["layers"]
    for block in _blocks(data):
        at = block.get("attention", {})
        if at.get("head_dim") not in (None, s.hidden // s.heads):
            at["head_dim"] = HEAD_DIM
        if at.get("kv_heads") not in (None, s.heads):
            at["kv_heads"] = 1 if at["kv_heads"] == 1 else 2
        elif "kv_heads" in at:
            del at["kv_heads"]
        if at.get("window"):
            at["window"] = 8
        mlp = block.get("mlp", {})
        if mlp.get("kind") == "moe":
            mlp["experts"] = 4
            mlp["top_k"] = min(mlp.get("top_k", 2), 2)
            mlp["expert"] = {**mlp.get("expert", {}), "ffn": n["ffn"] // 2}
        elif "ffn" in mlp:
            mlp["ffn"] = n["ffn"]
    return validate(Merged(data, file=f"tiny({spec.name})"))


def _blocks(data: dict[str, Any]) -> list[dict[str, Any]]:
    own = [data[s]["block"] for s in ("encoder", "decoder") if isinstance(data.get(s), dict) and "block" in data[s]]
    return ([data["block"]] if "block" in data else []) + own


def pydoc_corpus(folder: Any, topics_slice: slice = slice(12)) -> str:
    """A corpus file from Python's own documentation (pydoc_data.topics, offline everywhere): the
    sliced topics in sorted order, one document each, blank lines between documents only."""
    from pathlib import Path
    from pydoc_data.topics import topics

    path = Path(folder) / "pydoc.txt"
    docs = [topics[k].strip().replace("\n\n", "\n") for k in sorted(topics)[topics_slice]]
    path.write_text("\n\n".join(docs), encoding="utf-8")
    return str(path)
