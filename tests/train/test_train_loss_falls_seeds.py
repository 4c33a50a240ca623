"""The seed objectives' loss falls within a few dozen steps on real data that ships offline:
Python's own documentation (pydoc_data.topics: a third of it, for time) for text, scikit-learn's
digits for ViT.

Transformer-XL also resumes exactly: its carried memory is part of the checkpoint."""

import json

import pytest

import plmgraph as pg
from plmgraph.train.trainer import TrainConfig, Trainer, latest_checkpoint

SIZES = "layers=2,hidden=64,heads=4,vocab=1024,max_positions=64"


def losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.fixture(scope="module")
def pydoc(tmp_path_factory):
    """A third of Python's documentation (27 of its topics, about 150 kB), one topic per document."""
    from pydoc_data.topics import topics

    f = tmp_path_factory.mktemp("pydoc") / "pydoc.txt"
    f.write_text("\n\n".join(topics[k].strip().replace("\n\n", "\n") for k in sorted(topics)[::3]),
                 encoding="utf-8")
    return str(f)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """pydoc paragraphs labelled by what they are: grammar rules and interactive examples, or prose."""
    from pydoc_data.topics import topics

    def label(chunk):
        first = chunk.strip().splitlines()[0]
        return "code" if first.startswith((">>>", "...")) or "::=" in first else "prose"

    rows = [{"text": chunk.strip(), "label": label(chunk)}
            for k in sorted(topics) for chunk in topics[k].split("\n\n") if len(chunk.split()) >= 8]
    code = [r for r in rows if r["label"] == "code"]
    prose = [r for r in rows if r["label"] == "prose"]
    prose = prose[::len(prose) // len(code)][:len(code)]  # balanced: the prior alone is worth nothing
    rows = [r for pair in zip(code, prose, strict=True) for r in pair]
    f = tmp_path_factory.mktemp("cls") / "pydoc.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(f)


CASES = {
    "glm": (["glm", [SIZES]], "pydoc", 3e-3, 0.8),                    # blank infilling
    "bart-base": (["bart-base", [SIZES]], "pydoc", 3e-3, 0.5),        # denoising
    "xlnet-base": (["xlnet-base", [SIZES]], "pydoc", 3e-3, 0.3),      # permutation LM
    "transformer-xl": (["transformer-xl", [SIZES]], "pydoc", 3e-3, 0.5),  # CLM with segment recurrence
    "ernie-base": (["ernie-base", [SIZES]], "pydoc", 3e-3, 0.6),      # entity masking + NSP
    "transformer-base": (["transformer-base", [SIZES]], "pydoc", 3e-3, 0.4),  # CLM continuation
    "vit-base": (["vit-base", ["layers=2,hidden=64,heads=4", "embeddings.patches.image_size=8",
                               "embeddings.patches.patch_size=4", "embeddings.patches.channels=1",
                               "heads.0.labels=10"]], "digits", 1e-3, 0.3),
    "classification": (["gpt2", [SIZES, "objectives=[{kind: classification}]",  # byte-level BPE sees the indent
                                 "heads.0={kind: sequence_classification, labels: 2}"]], None, 1e-3, 0.15),
}


@pytest.mark.parametrize("case", list(CASES))
def test_seed_objective_loss_falls(tmp_path, pydoc, labelled, case):
    (name, over), data, lr, drop = CASES[case]
    data = {"pydoc": pydoc, None: labelled}.get(data, data)
    spec = pg.load_spec(name, over)
    cfg = TrainConfig(steps=24, batch_size=8, seq_len=32, lr=lr, warmup=3, checkpoint_every=1000, eval_batches=4)
    if case in ("vit-base", "classification"):
        cfg.batch_size = 16
    t = Trainer.create(spec, tmp_path / "run", data, cfg)
    result = t.run_steps()
    seen = losses(tmp_path / "run")
    first, last = sum(seen[:3]) / 3, sum(seen[-5:]) / 5
    print(case, [round(x, 3) for x in seen], result.eval)
    assert last < first - drop, seen
    assert result.eval["loss"] < first - drop / 2, result.eval
    if case in ("vit-base", "classification"):
        assert "accuracy" in result.eval and "perplexity" not in result.eval


def test_transformer_xl_resume_equals_uninterrupted_with_its_memory(tmp_path, pydoc):
    spec = pg.load_spec("transformer-xl", ["layers=2,hidden=32,heads=2,vocab=512,max_positions=64"])
    cfg = TrainConfig(steps=6, batch_size=2, seq_len=16, lr=3e-3, warmup=1, checkpoint_every=3, eval_batches=1)
    full = Trainer.create(spec, tmp_path / "full", pydoc, cfg)
    full.run_steps()
    assert full.mems is not None and full.mems[0].shape == (2, 16 * 6 if 16 * 6 <= 1600 else 1600, 32)

    def stop_at_3(m):
        if m["step"] == 3:
            raise KeyboardInterrupt

    part = Trainer.create(spec, tmp_path / "part", pydoc, cfg)
    assert part.run_steps(on_step=stop_at_3).interrupted
    assert latest_checkpoint(tmp_path / "part").name == "step-000003"
    again = Trainer.resume(tmp_path / "part")
    assert again.mems is not None and again.mems[0].shape[1] == 3 * 16
    again.run_steps()
    assert losses(tmp_path / "part") == losses(tmp_path / "full")
