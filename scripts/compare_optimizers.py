"""Compare optimizers through the Python API: three config files, one corpus, one table.

    python scripts/compare_optimizers.py                      # sgd, adam, adagrad on realtext-v1
    python scripts/compare_optimizers.py --epochs 1 --configs configs/sg_ns.yaml \
        configs/sg_ns_rmsprop.yaml --set model.dim=50

Each config is loaded with the same overrides (corpus, epochs, ...), trained with
:func:`sgjax.experiment.train` (no CLI involved) and evaluated; the table has the final
loss, words/s, analogy accuracy and WordSim-353 Spearman. The last line is the table as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sgjax.config import load_config
from sgjax.experiment import train

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["configs/sg_ns.yaml", "configs/sg_ns_adam.yaml", "configs/sg_ns_adagrad.yaml"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=[str(ROOT / c) for c in DEFAULT])
    ap.add_argument("--corpus", default=None, help="default: the shipped realtext-v1")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    ap.add_argument("--out", default=None, help="write each run under OUT/<config name>")
    args = ap.parse_args()

    overrides = list(args.overrides)
    if args.corpus:
        overrides.append(f"data.corpus={args.corpus}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    rows = []
    for path in args.configs:
        cfg = load_config(path, overrides)
        name = Path(path).stem
        out = Path(args.out) / name if args.out else None
        t = time.perf_counter()
        result = train(cfg, out, progress=False, evaluate_each_epoch=False)
        rows.append(
            {
                "config": name,
                "optimizer": cfg.optimizer.name,
                "lr": cfg.optimizer.learning_rate,
                "schedule": str(cfg.optimizer.schedule),
                "sparse": str(cfg.optimizer.sparse),
                "seconds": round(time.perf_counter() - t, 1),
                **{k: round(v, 4) for k, v in result.scores.items() if isinstance(v, float)},
            }
        )
    cols = [
        "config",
        "optimizer",
        "lr",
        "schedule",
        "sparse",
        "seconds",
        "analogy",
        "wordsim_spearman",
    ]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
