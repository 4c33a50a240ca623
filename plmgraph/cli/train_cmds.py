"""`plmgraph train`, `plmgraph eval`, `plmgraph generate`: train a spec on a corpus, evaluate, generate.

    plmgraph train gpt2 -O layers=4,hidden=256,heads=4,vocab=8192 --data pydoc --steps 300 -o runs/gpt2
    plmgraph train runs/gpt2 --steps 600              # resume exactly where it stopped
    plmgraph eval runs/gpt2                           # the run's held-out split, or --data FILE
    plmgraph generate runs/gpt2 --prompt "The" --max-new-tokens 50 --temperature 0.8 --top-k 50 --seed 0

torch is imported inside the commands, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import JSON_HELP, OVERRIDE_HELP, app, err, out, print_json, run

RUN_HELP = "Zoo name or spec file to start a run, or a run folder to resume."


def _is_run(path: str) -> bool:
    return (Path(path) / "train.json").is_file()


@app.command("train")
def train_cmd(
    spec: Annotated[str, typer.Argument(help=RUN_HELP, metavar="SPEC|RUN")],
    override: Annotated[list[str] | None, typer.Option("--override", "-O", help=OVERRIDE_HELP)] = None,
    data: Annotated[str | None, typer.Option("--data", help="Corpus: a text file (one sentence per line, blank "
                                             "lines between documents), a .jsonl file with `text` (and optional "
                                             "`label`, `spans`) or, for token classification, `tokens` and "
                                             "`labels` (one per word), a folder of them, `pydoc` (Python's own "
                                             "documentation, offline), `pydoc-tags` (its words tagged KEYWORD, "
                                             "NUMBER, PUNCT, CAPITALISED or OTHER: a token-classification task) "
                                             "or, for ViT, `digits` (scikit-learn's).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The run folder to create.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Total optimizer steps (default 200).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per micro-batch.")] = 16,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per sequence.")] = 128,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW).")] = 1e-3,
    warmup: Annotated[int | None, typer.Option("--warmup", help="Warmup steps (default min(100, steps/10)).")] = None,
    schedule: Annotated[str, typer.Option("--schedule", help="cosine, linear or constant after warmup.")] = "cosine",
    accumulate: Annotated[int, typer.Option("--accumulate", help="Micro-batches per optimizer step.")] = 1,
    grad_clip: Annotated[float, typer.Option("--grad-clip", help="Clip the gradient norm (0: off).")] = 1.0,
    bf16: Annotated[bool, typer.Option("--bf16", help="bf16 autocast.")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="fp16 autocast with dynamic loss scaling.")] = False,
    checkpointing: Annotated[bool, typer.Option("--checkpointing", help="Activation checkpointing per block "
                                                "(recompute in backward: less memory, more time).")] = False,
    compile_: Annotated[bool, typer.Option("--compile", help="Run the model through torch.compile.")] = False,
    memmap: Annotated[bool, typer.Option("--memmap", help="Stream a corpus larger than memory: tokenize it once "
                                         "into memory-mapped token files in the run folder.")] = False,
    layer_decay: Annotated[float, typer.Option("--layer-decay", help="Layer-wise lr decay: block i of L trains at "
                                               "lr * decay^(L + 1 - i); 1 is off.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of init, data order and masking.")] = 0,
    held_out: Annotated[float, typer.Option("--held-out", help="Fraction of documents held out.")] = 0.05,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Held-out eval every N steps (0: at the end).")] = 0,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", help="Checkpoint every N steps.")] = 100,
    tokenizer: Annotated[Path | None, typer.Option("--tokenizer", help="A tokenizer.json to use instead of "
                                                   "training one on the corpus.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    force: Annotated[bool, typer.Option("--force", help="Start a run in a folder that holds files.")] = False,
    tuning: Annotated[str | None, typer.Option("--tuning", help="Delta tuning, KIND:key=value,... (e.g. "
                                               "lora:rank=8,alpha=16,targets=attn.qkv+attn.out; bitfit; ia3; "
                                               "prompt:length=20); from a run, saved model or Hugging Face folder "
                                               "it fine-tunes those weights in a new run.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="none (one process), ddp or fsdp (FSDP2, one shard "
                                          "group per block); ddp and fsdp run under `torchrun --nproc-per-node N "
                                          "-m plmgraph train ...`.")] = "none",
    cpu_offload: Annotated[bool, typer.Option("--cpu-offload", help="fsdp: keep parameter shards, gradients and "
                                              "optimizer state in CPU memory.")] = False,
    mixed_precision: Annotated[str | None, typer.Option("--mixed-precision", help="fsdp: bf16 or fp16 parameters "
                                                        "in forward/backward, gradients reduced in fp32.")] = None,
) -> None:
    """Train SPEC on its own objectives (the spec's `objectives`), or resume the run folder RUN."""
    parallel: Any = None

    def go() -> None:
        nonlocal parallel
        from ..errors import UsageError
        from ..train.distributed import setup

        parallel = setup(strategy, cpu_offload=cpu_offload, mixed_precision=mixed_precision, device=device)
        quiet = not parallel.is_main  # under torchrun only rank 0 reports

        if _is_run(spec) and tuning is None:
            if override or output or tokenizer:
                raise UsageError("resuming a run takes only --steps (and --data when the corpus moved); "
                                 "-O, -o and --tokenizer belong to a new run")
            with _status(f"loading {spec}", quiet):
                from ..train.trainer import Trainer

                trainer = Trainer.resume(spec, steps=steps, data=data, parallel=parallel)
            _train(trainer, f"resuming at step {trainer.step}" + _where(parallel))
            return
        folder = Path(spec)
        if folder.is_dir() and not _is_run(spec) and not any((folder / f).is_file()
                                                             for f in ("spec.yaml", "config.json")):
            from ..train.trainer import read_run

            read_run(folder)  # raises: not a run, and no spec to start one from
        if output is None:
            raise UsageError("a new run needs -o RUN (the folder it is written to)")
        if data is None:
            raise UsageError("a new run needs --data FILE (or --data pydoc for Python's own documentation)")
        from ..spec import load_spec
        from ..train.trainer import TrainConfig, Trainer

        cfg = TrainConfig(steps=steps or 200, batch_size=batch_size, seq_len=seq_len, lr=lr, warmup=warmup,
                          schedule=schedule, accumulate=accumulate, grad_clip=grad_clip, bf16=bf16, fp16=fp16,
                          checkpointing=checkpointing, compile=compile_, layer_decay=layer_decay, memmap=memmap,
                          seed=seed,
                          held_out=held_out, eval_every=eval_every, checkpoint_every=checkpoint_every, device=device)
        base, tok_path = None, tokenizer
        if tuning is not None and folder.is_dir():  # fine-tune a trained model's weights
            from ..tuning.core import pretrained

            spec_obj, base, base_tok = pretrained(folder)
            if override:
                raise UsageError("-O changes the architecture; a model to fine-tune keeps its own")
            if parallel.strategy == "fsdp":  # the base weights are copied in after the model is sharded
                raise UsageError("fine-tuning a trained model's weights under --strategy fsdp is not supported "
                                 "yet; use --strategy ddp (or one process)")
            tok_path = tokenizer or base_tok
        else:
            spec_obj = load_spec(spec, override)
        if tuning is not None:
            from ..tuning.options import apply_options

            spec_obj = apply_options(spec_obj, tuning)
            from ..tuning import plan as tuning_plan

            planned = tuning_plan(spec_obj)  # bad options fail before anything is written
            if base is not None:
                from ..tuning.core import check_base

                check_base(planned, base, spec, spec_obj.name)
        with _status(f"preparing {spec_obj.name}: corpus, tokenizer, examples, model", quiet):
            trainer = Trainer.create(spec_obj, output, data, cfg, tokenizer=tok_path, force=force,
                                     parallel=parallel)
            if base is not None:
                from ..tuning.core import load_base

                load_base(trainer.model, base, spec)
        intro = (f"{spec_obj.name}: {trainer.model.num_params():,} parameters, "
                 f"{len(trainer.examples):,} training sequences of {cfg.seq_len}, "
                 f"objectives {', '.join(o.kind for o in spec_obj.objectives)}")
        if spec_obj.tuning.kind != "full":
            from ..tuning import trainable_report

            if not quiet:
                out.print(trainable_report(trainer.model), highlight=False)
            intro += f"; tuning {spec_obj.tuning.kind}"
        _train(trainer, intro + _where(parallel))

    try:
        run(go)
    finally:
        if parallel is not None:
            parallel.close()


def _status(text: str, quiet: bool) -> Any:
    import contextlib

    return contextlib.nullcontext() if quiet else err.status(text, spinner="dots")


def _where(parallel: Any) -> str:
    return f"; {parallel.strategy} on {parallel.world} processes" if parallel.distributed else ""


def _train(trainer: Any, intro: str) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not trainer.parallel.is_main:  # another rank of a torchrun job: train, say nothing
        result = trainer.run_steps()
        if result.interrupted:
            raise typer.Exit(130)
        return
    err.print(intro, highlight=False)
    cfg = trainer.cfg
    columns = [TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.3f}  {task.fields[tps]:,.0f} tok/s  lr {task.fields[lr]:.2e}"),
               TimeRemainingColumn()]
    console = err._real() if hasattr(err, "_real") else err  # rich's Live enters the console: the real one
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=cfg.steps, completed=trainer.step, loss=float("nan"), tps=0.0, lr=0.0)

        def step(m: dict[str, Any]) -> None:
            bar.update(task, completed=m["step"], loss=m["loss"], tps=m["tokens_per_s"], lr=m["lr"])

        result = trainer.run_steps(on_step=step)
    if result.interrupted:
        err.print(f"interrupted at step {result.step}; checkpoint written to {result.checkpoint}; resume with "
                  f"`plmgraph train {trainer.run}`", highlight=False)
        raise typer.Exit(130)
    msg = f"step {result.step}: train loss {result.last.get('loss', float('nan')):.3f}"
    if result.eval:
        msg += f", held-out loss {result.eval['loss']:.3f}" + (
            f" (perplexity {result.eval['perplexity']:.1f})" if "perplexity" in result.eval else
            f" (accuracy {result.eval.get('accuracy', float('nan')):.3f})")
    out.print(msg + f"; wrote {trainer.run}", highlight=False)


@app.command("eval")
def eval_cmd(
    path: Annotated[str, typer.Argument(help="A run folder (or a saved model folder with tokenizer.json).",
                                        metavar="RUN")],
    data: Annotated[str | None, typer.Option("--data", help="Corpus to evaluate on (default: the run's held-out "
                                             "split).")] = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len", help="Tokens per sequence (default: the run's).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per batch.")] = 16,
    stride: Annotated[int | None, typer.Option("--stride", help="Sliding-window perplexity (causal decoders): the "
                                               "documents as one token stream, scored STRIDE tokens at a time by "
                                               "windows of --seq-len tokens, so each token has at least seq-len - "
                                               "STRIDE tokens of context; STRIDE = seq-len is the plain "
                                               "(non-overlapping) perplexity.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Loss, perplexity (exp of the mean token cross-entropy) and, for encoders, MLM accuracy; token
    accuracy for a token classifier; with --stride, sliding-window perplexity."""

    def go() -> None:
        import json as _json

        from ..errors import UsageError
        from ..train.data import load_corpus
        from ..train.evaluate import evaluate
        from ..train.objectives import collator_for
        from ..train.trainer import TrainConfig, load_run_model

        with err.status(f"loading {path}", spinner="dots"):
            model, tok = load_run_model(path)
        cfg = TrainConfig()
        if _is_run(path):
            cfg = TrainConfig.from_json(_json.loads((Path(path) / "train.json").read_text())["config"])
            src = data or _json.loads((Path(path) / "train.json").read_text())["data"]
        elif data is None:
            raise UsageError("--data FILE is needed for a model folder that is not a run")
        else:
            src = data
        name = Path(str(src)).name
        if stride is not None:  # sliding-window perplexity over the documents as one stream
            from ..train.evaluate import perplexity

            window = seq_len or cfg.seq_len
            collator = collator_for(model.spec, tok, cfg.seed)
            if cfg.memmap and data is None:  # the held-out token file written when the run started
                from ..train.data import TokenFile

                ids = TokenFile(Path(path) / "tokens-held.bin")[:]
            else:
                corpus = load_corpus(src)
                if data is None:
                    corpus = corpus.split(cfg.held_out, cfg.seed)[1]
                    if not corpus.docs:
                        raise UsageError("the run holds out no documents; pass --data FILE")
                name = corpus.name
                ids = collator.stream(corpus)[0]
            with err.status(f"scoring {len(ids):,} tokens, stride {stride}", spinner="dots"):
                result = {**perplexity(model, ids, window=window, stride=stride), "window": window, "stride": stride}
        elif model.spec.embeddings.patches is not None:  # images: the run's held-out digits, or all of them
            from ..train.objectives import image_data

            collator, train_idx, held = image_data(model.spec, src, cfg.held_out, cfg.seed)
            examples = held if data is None else sorted(train_idx + held)
        elif cfg.memmap and data is None:  # the held-out token file written when the run started
            collator = collator_for(model.spec, tok, cfg.seed)
            examples = collator.open_stream(Path(path) / "tokens-held.bin", seq_len or cfg.seq_len, allow_empty=True)
        else:
            corpus = load_corpus(src)
            name = corpus.name
            if data is None:
                corpus = corpus.split(cfg.held_out, cfg.seed)[1]
                name = corpus.name
                if not corpus.docs:
                    raise UsageError("the run holds out no documents; pass --data FILE")
            collator = collator_for(model.spec, tok, cfg.seed)
            if _is_run(path):
                collator.restore_labels(_json.loads((Path(path) / "train.json").read_text()))
            examples = collator.examples(corpus, seq_len or cfg.seq_len)
        if stride is None and not len(examples):
            raise UsageError("nothing to evaluate: the held-out split is empty; pass --data FILE")
        if stride is None:
            with err.status(f"evaluating on {len(examples):,} sequences", spinner="dots"):
                result = evaluate(model, collator, examples, batch_size)
        if as_json:
            print_json({"data": str(src), **result})
            return
        rows = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in result.items()]
        out.print(f"{name}: " + ", ".join(rows), highlight=False)

    run(go)


@app.command("generate")
def generate_cmd(
    path: Annotated[str, typer.Argument(help="A run folder (or a saved model folder with tokenizer.json), or an "
                                        "export folder (model.onnx: generation on ONNX Runtime).",
                                        metavar="RUN|DEPLOY")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="Prompt text (repeat for a batch).")],
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", help="Tokens to generate.")] = 50,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature (0: greedy).")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", help="Sample from the k most likely tokens (0: all).")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass.")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option("--repetition-penalty", help="CTRL's penalty (1: off).")] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Always take the most likely token.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sampling.")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Export folders: ONNX Runtime execution "
                                                 "provider (tensorrt, cuda, cpu; default the first available).")]
    = None,
) -> None:
    """Continue each prompt with the KV cache; greedy unless a temperature, top-k or top-p is given."""

    def go() -> None:
        if (Path(path) / "model.onnx").is_file() or (Path(path) / "decoder_model_merged.onnx").is_file():
            # an export folder (a decoder's, or an encoder-decoder's seq2seq layout): generation on ONNX Runtime
            from .deploy_cmds import generate_onnx

            generate_onnx(path, prompt, max_new_tokens, temperature=0.0 if greedy else temperature, top_k=top_k,
                          top_p=top_p, repetition_penalty=repetition_penalty, seed=seed, provider=provider)
            return
        from ..errors import UsageError

        if provider is not None:
            raise UsageError("--provider is for export folders (model.onnx); this is a PyTorch run")
        from ..train.generate import generate
        from ..train.trainer import load_run_model

        with err.status(f"loading {path}", spinner="dots"):
            model, tok = load_run_model(path)
        ids = generate(model, tok, prompt, max_new_tokens, temperature=0.0 if greedy else temperature, top_k=top_k,
                       top_p=top_p, repetition_penalty=repetition_penalty, seed=seed)
        for row in ids.tolist():
            out.print(tok.decode(row), highlight=False, markup=False)

    run(go)


@app.command("grow")
def grow_cmd(
    path: Annotated[str, typer.Argument(help="A training run folder (its last checkpoint is grown).", metavar="RUN")],
    layers: Annotated[int, typer.Option("--layers", help="Layers of the grown model (twice the run's: stacking, "
                                        "Gong et al. 2019; layer j copies layer j mod N).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The new run folder to write.")],
) -> None:
    """Progressive stacking: copy RUN's layers on top of themselves into a deeper run, then train it on."""

    def go() -> None:
        from ..graph.diff import diff
        from ..spec import load_spec
        from ..train.grow import grow_run
        from ..train.trainer import latest_checkpoint

        with err.status(f"growing {path} to {layers} layers", spinner="dots"):
            new = grow_run(path, layers, output)
            before = load_spec(latest_checkpoint(Path(path)) / "spec.yaml")
            after = load_spec(latest_checkpoint(new) / "spec.yaml")
        for line in diff(before, after).lines():
            out.print(line, highlight=False, markup=False)
        out.print(f"wrote {new}; train it with `plmgraph train {new} --steps N`", highlight=False, markup=False)

    run(go)
