"""Every tuning combination `build` cannot do is refused by the validator (issue 12, "any valid combination
works"): each tuning kind's `check` facet (plmgraph/kinds/tuning/) runs inside the spec validator, so
`plmgraph validate` exits 1 naming the field of `tuning`, the value and why, and a spec the validator
accepts builds (tests/compile/test_property.py asserts that for every drawn spec)."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

import plmgraph as pg
from plmgraph.cli import app, spec_cmds  # noqa: F401  (registers validate)
from plmgraph.spec.errors import SpecError
from plmgraph.tuning import TuningError

runner = CliRunner()
SMALL = "layers=2,hidden=64,heads=4,vocab=128"

# (spec, overrides, the field refused, what the message says)
CASES = [
    ("gpt2", "position={kind: alibi},tuning={kind: prefix, length: 2}", "tuning.kind",
     r"prefix tuning is not compiled for alibi positions \(the prefix columns would need their own bias\)"),
    ("gpt2", "position={kind: t5_relative},tuning={kind: prefix, length: 2}", "tuning.kind",
     r"prefix tuning is not compiled for t5_relative positions"),
    ("transformer-xl", "tuning={kind: prefix, length: 2}", "tuning.kind",
     r"prefix tuning is not compiled for attention/segment_memory \(relative attention\)"),
    ("t5-small", "tuning={kind: prefix, length: 2}", "tuning.kind",
     r"prefix tuning is not compiled for encoder-decoder models"),
    ("albert-base", "tuning={kind: prefix, length: 2}", "tuning.kind",
     r"prefix tuning is not compiled for shared layers \(ALBERT\)"),
    ("gpt2", "max_positions=8,tuning={kind: prefix, length: 8}", "tuning.length",
     r"prefix tuning: length 8 leaves no position for the text .*choose a length below 8"),
    ("t5-small", "tuning={kind: ladder}", "tuning.kind", r"ladder side tuning is not compiled for encoder-decoder"),
    ("xlnet-base", "tuning={kind: ladder, reduction: 2}", "tuning.kind",
     r"ladder side tuning is not compiled for attention/two_stream \(relative attention\)"),
    ("gpt2", "tuning={kind: ladder, reduction: 3}", "tuning.reduction", r"reduction 3 does not divide hidden 64"),
    ("xlnet-base", "tuning={kind: prompt, length: 2}", "tuning.kind",
     r"prompt tuning on xlnet-base: xl_relative positions are not compiled with soft tokens"),
    ("transformer-xl", "tuning={kind: prompt, length: 2}", "tuning.kind", r"xl_relative positions"),
    ("vit-base", "tuning={kind: prompt}", "tuning.kind", r"an image model has no token embeddings"),
    ("gpt2", "max_positions=8,tuning={kind: prompt, length: 9}", "tuning.length",
     r"prompt tuning: length 9 leaves no room for text .*choose a length below 8"),
    ("llama2-7b", "tuning={kind: bitfit}", "tuning.kind", r"BitFit: llama2-7b has no biases to train"),
    ("mixtral-8x7b", "attention.kv_heads=2,tuning={kind: ia3}", "tuning.targets",
     r"IA³ targets 'mlp.down' match no module of mixtral-8x7b; its layers have attn.qkv, attn.q"),
    ("gpt2", "tuning={kind: lora, rank: 65}", "tuning.rank",
     r"LoRA rank 65 is larger than attn.q in decoder.layers.0.attn.qkv \(64 in, 64 out\); the rank must be at "
     r"most 64"),
    ("gpt2", "tuning={kind: lora},tuning.targets=[mlp.gate]", "tuning.targets", r"LoRA targets 'mlp.gate' match no module"),
    ("gpt2", "tuning={kind: adapters, bottleneck: 65}", "tuning.bottleneck",
     r"adapters: bottleneck 65 is wider than the model's hidden size 64; a bottleneck must be at most 64"),
]


def _ids(case):  # noqa: ANN001, ANN202
    return f"{case[0]}-{case[2]}-{case[1].split('kind: ')[-1].split(',')[0].rstrip('}')}"


@pytest.mark.parametrize(("name", "over", "field", "match"), CASES, ids=[_ids(c) for c in CASES])
def test_validate_refuses_what_build_cannot_do(name, over, field, match):
    r = runner.invoke(app, ["validate", name, "-O", f"{SMALL},{over}"])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit), r.output
    line = next(x for x in r.output.splitlines() if x.startswith("error:"))
    assert f": {field}: " in line, line
    assert re.search(match, line), line
    assert len(r.output.splitlines()) == 1, r.output  # one problem, one line

    r = runner.invoke(app, ["validate", name, "-O", f"{SMALL},{over}", "--json"])
    assert r.exit_code == 1
    (problem,) = json.loads(r.output)[0]["problems"]
    assert problem["field"] == field and problem["file"] == "--override"


@pytest.mark.parametrize(("name", "over", "field", "match"), CASES[:4], ids=[_ids(c) for c in CASES[:4]])
def test_the_library_refuses_them_too_and_the_same_spec_without_tuning_builds(name, over, field, match):
    with pytest.raises(SpecError, match=f"{field}: .*{match}"):
        pg.load_spec(name, f"{SMALL},{over}")
    base = ",".join(p for p in f"{SMALL},{over}".split(",") if "tuning" not in p and "length" not in p)
    pg.build(pg.load_spec(name, base), device="meta")


def test_a_spec_written_in_a_file_is_refused_at_its_line(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("extends: llama2-7b\nname: m\nsizes: {layers: 2, hidden: 64, heads: 4, vocab: 128}\n"
                 "tuning:\n  kind: lora\n  rank: 100\n")
    r = runner.invoke(app, ["validate", str(f)])
    assert r.exit_code == 1
    assert f"{f}:6:3: tuning.rank: LoRA rank 100 is larger than" in r.output, r.output


def test_a_spec_changed_after_validation_is_still_refused_at_build():
    """`model_copy(update=...)` skips the validator: `plan` asks the same `check` before anything is built."""
    spec = pg.load_spec("llama2-7b", SMALL)
    bitfit = pg.load_spec("gpt2", f"{SMALL},tuning={{kind: bitfit}}").tuning
    bad = spec.model_copy(update={"tuning": bitfit})
    with pytest.raises(TuningError, match=r"tuning.kind: BitFit: llama2-7b has no biases to train"):
        pg.build(bad, device="meta")
