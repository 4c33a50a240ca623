"""Peak memory of loading a Hugging Face checkpoint of about 1 GB, against the checkpoint's size.

    python tools/bench_load.py                  # a ~1 GB fp32 LLaMA-shaped checkpoint in two shards
    python tools/bench_load.py --layers 4       # smaller (quicker)

The checkpoint is written from the importer's own tables (random tensors of exactly the shapes
``config.json`` implies, split into two shards with an index; transformers is not needed), then
each way of loading it runs in a fresh Python process, which reports its peak resident memory
(``ru_maxrss``) minus its resident memory once torch and plmgraph are imported:

* ``from_hf``: plmgraph's loader: parameters allocated once, each checkpoint tensor read,
  assembled and copied into its parameter in place, shard by shard;
* ``state dict first``: the whole plmgraph state dict read (`load_state_dict`), then the model
  built and the state dict loaded into it (two copies at the peak).

The result is the ratio of that memory to the checkpoint's bytes on disk; 1.0 is one copy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import resource, sys, json
import torch
import plmgraph as pg
from plmgraph.compile import hf
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path, how = sys.argv[1], sys.argv[2]
if how == "from_hf":
    model = pg.from_hf(path)
else:
    sd = hf.load_state_dict(path)
    model = pg.build(hf.spec_from_hf(path), seed=0)
    model.load_state_dict(sd, strict=False)
    del sd
n = sum(p.numel() for p in model.parameters())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kib": base, "peak_kib": peak, "params": n}))
"""


def make_checkpoint(folder: Path, layers: int) -> int:
    """A LLaMA-shaped fp32 checkpoint (hidden 1024, ffn 2816, vocab 32000) in two shards; returns its bytes."""
    import torch
    from safetensors.torch import save_file

    from plmgraph.compile.hf import expected_hf_shapes
    from plmgraph.compile.hf_types import config_to_spec
    from plmgraph.graph import resolve

    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 32000, "hidden_size": 1024,
           "num_hidden_layers": layers, "num_attention_heads": 16, "num_key_value_heads": 16,
           "intermediate_size": 2816, "max_position_embeddings": 2048, "tie_word_embeddings": False}
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    shapes = expected_hf_shapes(resolve(config_to_spec(cfg)), "llama")
    names = sorted(shapes)
    g = torch.Generator().manual_seed(0)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        fname = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({k: 0.02 * torch.randn(shapes[k], generator=g) for k in part}, str(folder / fname))
        weight_map.update({k: fname for k in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=14, help="decoder layers (14: about 1 GB in fp32)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        size = make_checkpoint(ckpt, args.layers)
        rows = {}
        for how in ("from_hf", "state dict first"):
            r = subprocess.run([sys.executable, "-c", CHILD, str(ckpt), how], capture_output=True, text=True,
                               check=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            extra = (res["peak_kib"] - res["base_kib"]) * 1024
            rows[how] = {"extra_bytes": extra, "ratio": extra / size, "params": res["params"]}
    print(f"checkpoint: {size / 2**30:.2f} GiB fp32 in 2 shards ({rows['from_hf']['params']:,} parameters)")
    for how, r in rows.items():
        print(f"  {how:17s} peak RSS above imports: {r['extra_bytes'] / 2**30:.2f} GiB = {r['ratio']:.2f}x "
              "the checkpoint")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint_bytes": size, **rows}, indent=1))


if __name__ == "__main__":
    main()
