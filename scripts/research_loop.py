"""A research loop through sgjax's Python API, as a notebook would run it (public names only).

1. Train two optimizers (SGD and Adam) on the same config, recording the loss every 50
   steps with a callback.
2. Continue the SGD run by 2 epochs (the rest of its schedule is stretched over them, so
   the learning rate does not jump: sgjax.continuation).
3. Start a third run from the SGD run's vectors (``model.init_from``).
4. Overlay the three runs' curves in one figure with ``sgjax report`` (its Python function).

    python scripts/research_loop.py --out runs/loop              # the smoke config, ~1 min
    python scripts/research_loop.py --config configs/sg_ns.yaml --out runs/loop

Prints one JSON object: per run, the recorded losses' first and last values, the scores and
the figures written. Needs matplotlib (``pip install -e ".[plot]"``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from sgjax.callbacks import Callback
from sgjax.config import load_config
from sgjax.experiment import train
from sgjax.report import write_overlay

ROOT = Path(__file__).resolve().parent.parent


def loss_recorder() -> tuple[Callback, list[tuple[int, float]]]:
    """A callback that keeps ``(step, loss)`` of every log record (one each
    ``train.log_every_steps`` steps) and the list it fills."""
    losses: list[tuple[int, float]] = []
    return Callback(on_log=lambda state, rec: losses.append((rec["step"], rec["loss"]))), losses


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "smoke.yaml"))
    p.add_argument("--out", default="runs/research_loop")
    p.add_argument("--every", type=int, default=50, help="record the loss every this many steps")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)  # the loop's own directory: a fresh start
    t0 = time.perf_counter()
    # a log record every `every` steps: calls of `every` steps make the records land on them
    common = [
        *args.overrides,
        f"train.log_every_steps={args.every}",
        f"train.steps_per_call={args.every}",
    ]
    report: dict = {"runs": {}}

    def run(name: str, *overrides: str, resume_of: str | None = None) -> None:
        rec, losses = loss_recorder()
        cfg = load_config(args.config, [*common, *overrides])
        target = out / (resume_of or name)
        result = train(cfg, target, resume=resume_of is not None, progress=False, callbacks=[rec])
        report["runs"][name] = {
            "dir": str(target),
            "logged": len(losses),
            "first_loss": losses[0][1] if losses else None,
            "last_loss": losses[-1][1] if losses else None,
            "steps": int(result.state.step),
            "scores": result.scores,
        }

    run("sgd", "optimizer.name=sgd")
    run("adam", "optimizer.name=adam", "optimizer.learning_rate=0.002")
    epochs = load_config(out / "sgd" / "config.yaml").train.epochs
    run("sgd+2", "optimizer.name=sgd", f"train.epochs={epochs + 2}", resume_of="sgd")
    run("from_sgd", "optimizer.name=sgd", f"model.init_from={out / 'sgd' / 'vectors.bin'}")
    written, notes = write_overlay([out / "sgd", out / "adam", out / "from_sgd"], out / "figures")
    report.update(figures=[str(f) for f in written], notes=notes)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
