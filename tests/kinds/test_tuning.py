"""The tuning kinds (plmgraph/kinds/tuning/): only `full` is compiled; the others validate, show
and diff, and `build` refuses them (not compiled yet, issue 9) instead of training every parameter."""

from __future__ import annotations

import pytest
from helpers import tiny
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, build_cmds, diff_cmds, spec_cmds  # noqa: F401  (register commands)
from plmgraph.kinds import KINDS, NotCompiledYet
from plmgraph.kinds.base import Aspect

runner = CliRunner()
REFUSED = {"lora": "the low-rank adapters", "adapters": "the bottleneck adapters", "prefix": "the key/value prefixes",
           "bitfit": "the biases"}


@pytest.mark.parametrize("variant", ["full", *REFUSED])
def test_every_facet_or_an_explicit_refusal(variant):
    k = KINDS[f"tuning/{variant}"]
    a = pg.load_spec("gpt2", f"tuning={{kind: {variant}}}").tuning.model_dump(exclude={"kind"})
    assert k.spec is not None and isinstance(k.words(a), str)
    assert all(isinstance(x, Aspect) for x in k.aspects(a, "tuning")) and k.label(a)[0]
    for facet, call in {"params": lambda: k.params(a), "flops": lambda: k.flops(a, {}, 8),
                        "build": lambda: k.build(None), "init": lambda: k.init(None, None)}.items():
        if facet in k.refused:
            with pytest.raises(NotCompiledYet, match=f"tuning kind '{variant}' is not compiled yet"):
                call()
        else:
            call()
    assert ("build" in k.refused) == (variant != "full")


@pytest.mark.parametrize("variant", list(REFUSED))
def test_build_refuses_and_the_rest_still_works(variant):
    spec = pg.load_spec(tiny("gpt2"), f"tuning={{kind: {variant}}}")
    assert pg.stats(spec).params == pg.stats(tiny("gpt2")).params
    assert any("tuning" in line for line in pg.diff(tiny("gpt2"), spec).lines())
    with pytest.raises(NotCompiledYet, match=rf"tuning kind '{variant}' is not compiled yet \(issue 9\); the spec "
                                             rf"validates, shows and diffs, but `build` cannot train only "
                                             rf"{REFUSED[variant]}"):
        pg.build(spec, device="meta")


def test_full_builds():
    pg.build(pg.load_spec(tiny("gpt2"), "tuning={kind: full}"), device="meta")


def test_cli_build_refuses_lora_and_show_works():
    r = runner.invoke(app, ["build", "gpt2", "-O", "tuning={kind: lora}"])
    assert r.exit_code == 1 and "tuning kind 'lora' is not compiled yet (issue 9)" in r.output, r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["show", "gpt2", "-O", "tuning={kind: lora}"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["validate", "gpt2", "-O", "tuning={kind: lora}"])
    assert r.exit_code == 0, r.output
