"""The long profile of the end-to-end property test (tests/compile/test_property.py), on demand.

    python tools/fuzz_specs.py --examples 2000            # random (not derandomised), no export
    python tools/fuzz_specs.py --examples 300 --export 20 --seed 7

Draws `--examples` valid specs from ``tests/strategies.py`` and runs each through the whole
pipeline (validate, resolve, stats, build, counts, oracle, padded forward, backward, KV cache,
diff, draw); the first `--export` of them also export to ONNX and are verified in ONNX
Runtime. Hypothesis shrinks the first failure to a small spec and prints it; add it to the
test's ``REGRESSIONS`` once fixed. Exit status 1 on a failure. CI runs the same test with a
small, derandomised budget (``PLMGRAPH_FUZZ_EXAMPLES``, default 60).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "compile")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=500, help="specs to draw (default 500)")
    ap.add_argument("--export", type=int, default=0, help="of those, how many also export to ONNX (default 0)")
    ap.add_argument("--seed", type=int, default=None, help="seed the draws (default: random)")
    args = ap.parse_args()

    from hypothesis import HealthCheck, given, seed, settings
    from strategies import specs
    from test_property import run_pipeline

    seen: Counter[str] = Counter()
    count = [0]

    @settings(max_examples=args.examples, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(data=specs())
    def prop(data: dict) -> None:
        count[0] += 1
        b = data["block"]
        seen.update([data["family"], "position/" + data["position"]["kind"], "norm/" + b["norm"]["kind"],
                     "attention/" + b["attention"]["kind"], "mlp/" + b["mlp"]["kind"],
                     "residual/" + b["residual"]["kind"], "placement/" + b["placement"],
                     "sharing/" + data.get("sharing", {}).get("kind", "none")]
                    + ["head/" + h["kind"] for h in data.get("heads", [])])
        with tempfile.TemporaryDirectory() as tmp:
            run_pipeline(data, Path(tmp), export=count[0] <= args.export)

    if args.seed is not None:
        prop = seed(args.seed)(prop)
    t0 = time.perf_counter()
    try:
        prop()
    except Exception as e:  # hypothesis has printed the shrunk example
        print(f"FAILED after {count[0]} runs: {type(e).__name__}: {e}"[:2000], file=sys.stderr)
        return 1
    print(f"{count[0]} specs passed in {time.perf_counter() - t0:.0f} s")
    for k, v in sorted(seen.items()):
        print(f"  {k:32} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
