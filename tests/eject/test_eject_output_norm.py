"""Eject writes OLMo 2's layer (``block.placement: output``, ``qk_norm_scope: projection``): the ejected file,
loaded with plmgraph gone, gives the compiled module's logits with padding (tests/eject/test_eject.py's
helpers)."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from test_eject import inputs, load_ejected

import plmgraph as pg


@pytest.mark.parametrize("edits", [
    ["block.placement=output", "attention.qk_norm=true", "attention.qk_norm_scope=projection",
     "attention.kv_heads=2"],  # OLMo 2 with GQA
    ["block.placement=output"],
    ["attention.qk_norm=true", "attention.qk_norm_scope=projection"],  # MHA: q and k norms of one width
])
def test_ejected_olmo2_layer_matches_the_compiled_module(tmp_path, edits):
    spec = pg.load_spec(tiny("llama2-7b"), edits)
    source = pg.eject(spec)
    if "block.placement=output" in edits:
        assert "x = x + self.attn_post_norm(self.attn(x, " in source and "self.attn_norm" not in source
    if "attention.qk_norm_scope=projection" in edits:
        kv = "cfg.kv_heads" if "attention.kv_heads=2" in edits else "cfg.heads"
        assert "self.q_norm = RMSNorm(cfg.heads * cfg.head_dim" in source
        assert f"self.k_norm = RMSNorm({kv} * cfg.head_dim" in source
    path = tmp_path / "olmo2_like.py"
    path.write_text(source, encoding="utf-8")
    mod = load_ejected(path)
    model = pg.build(spec, seed=0).eval()
    ejected = mod.Model(mod.Config()).eval()
    ejected.load_state_dict(model.state_dict(), strict=True)
    x = inputs(spec)
    with torch.no_grad():
        want, got = model(**x), ejected(**x)
    keep = x["attention_mask"].bool()
    torch.testing.assert_close(got["lm"][keep], want.logits[keep])
