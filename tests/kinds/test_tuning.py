"""The tuning kinds (plmgraph/kinds/tuning/): every one is compiled now (issue 9). Each has its words,
diff facts, diagram label and explanations; its plan counts what trains, the build makes exactly that
trainable, and `show` prints the count; a bad option is one message through the CLI. The kinds' own
behaviour is tested in tests/tuning/."""

from __future__ import annotations

import pytest
from helpers import tiny
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, build_cmds, diff_cmds, spec_cmds  # noqa: F401  (register commands)
from plmgraph.kinds import KINDS
from plmgraph.kinds.base import Aspect

runner = CliRunner()
VARIANTS = [k.split("/")[1] for k in KINDS if k.startswith("tuning/")]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_facet_and_the_plan_matches_the_build(variant):
    k = KINDS[f"tuning/{variant}"]
    spec = pg.load_spec(tiny("gpt2"), f"tuning={{kind: {variant}}}")
    a = spec.tuning.model_dump(exclude={"kind"})
    assert k.spec is not None and isinstance(k.words(a), str) and k.label(a)[0]
    assert all(isinstance(x, Aspect) for x in k.aspects(a, "tuning"))
    assert k.explain("en") and k.explain("zh") and not k.refused
    model = pg.build(spec, device="meta")
    st = pg.stats(spec)
    assert st.tuning == variant
    assert st.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) == model.tuning.trainable
    assert st.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "full"])
def test_show_prints_the_trainable_count(variant):
    r = runner.invoke(app, ["show", "gpt2", "-O", f"tuning={{kind: {variant}}}"])
    assert r.exit_code == 0, r.output
    assert f"tuning {variant}: trainable " in r.output and "frozen" in r.output, r.output


def test_cli_refuses_a_bad_tuning_option_in_one_message():
    r = runner.invoke(app, ["build", "gpt2", "-O", "tuning={kind: adapters, bottleneck: 4096}"])
    assert r.exit_code == 1 and "bottleneck 4096 is wider than the model's hidden size 768" in r.output, r.output
    assert "Traceback" not in r.output
