"""The MLP kinds (plmgraph/kinds/mlp/): every facet answers on a resolved zoo graph's node, and
a MoE load-balancing loss is refused at `build` (not compiled yet) instead of silently ignored."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, build_cmds, spec_cmds  # noqa: F401  (register commands)
from plmgraph.compile.hf_config import config_to_spec
from plmgraph.compile.init import InitRule
from plmgraph.compile.registry import Node
from plmgraph.kinds import KINDS, NotCompiledYet
from plmgraph.kinds.base import Aspect

runner = CliRunner()
ZOO = {"mlp/dense": "gpt2", "mlp/gated": "llama2-7b", "mlp/moe": "mixtral-8x7b"}
AUX = "block.mlp.aux_loss=0.01"


@pytest.mark.parametrize("name", list(ZOO))
def test_every_facet(name):
    assert name in KINDS and KINDS[name].spec is not None
    g = pg.resolve(tiny(ZOO[name]))
    nid = g.nodes(kind=name)[0]
    d, k = g.node(nid), KINDS[name]
    assert k.params(d["attrs"]) == d["params"]
    assert k.flops(d["attrs"], d["params"], 8) > 0
    assert isinstance(k.words(d["attrs"]), str) and k.words(d["attrs"])
    assert all(isinstance(x, Aspect) for x in k.aspects(d["attrs"], d["role"]))
    title, detail = k.label(d["attrs"])
    assert title and detail
    module = k.build(Node(nid, name, d["attrs"], d["params"]))
    assert {n: tuple(p.shape) for n, p in module.named_parameters()} == {n: tuple(s) for n, s in d["params"].items()}
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(7.0)
        k.init(module, InitRule(module, std=0.02, resid_std=0.01, fan_in=False, hidden=64).at(nid, d["attrs"], "mlp"))
    assert all((p != 7.0).all() for p in module.parameters())
    assert len(module.update_weights()) == 2  # what DeepNorm scales


def test_moe_aux_loss_is_refused_at_build():
    spec = pg.load_spec(tiny("mixtral-8x7b"), AUX)
    assert pg.stats(spec).params == pg.stats(tiny("mixtral-8x7b")).params  # still resolves, counts
    assert "load-balancing loss: 0 → 0.01" in "\n".join(pg.diff(tiny("mixtral-8x7b"), spec).lines())  # and diffs
    with pytest.raises(NotCompiledYet, match=r"'mlp/moe', field aux_loss = 0\.01: the load-balancing loss .* "
                                             r"not compiled yet"):
        pg.build(spec, device="meta")


def test_hf_mixtral_has_a_load_balancing_loss_only_with_router_logits_on():
    cfg = {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "vocab_size": 50, "hidden_size": 32,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 40,
           "max_position_embeddings": 64, "num_local_experts": 4, "router_aux_loss_coef": 0.02}
    assert config_to_spec(cfg).block.mlp.aux_loss == 0  # HF trains without it: output_router_logits is off
    assert config_to_spec({**cfg, "output_router_logits": True}).block.mlp.aux_loss == 0.02


def test_moe_aux_loss_refused_by_the_cli():
    r = runner.invoke(app, ["build", "mixtral-8x7b", "-O", AUX])
    assert r.exit_code == 1 and "aux_loss" in r.output and "not compiled yet" in r.output, r.output
    assert "Traceback" not in r.output
