"""Speed matrix: how long a user waits, sgjax against gensim, fastText and word2vec.c, for
every model, each tool in its own process, alternating.

Every run trains one model (``--models``) on one corpus, every tool reading the same
plain-text file (a compressed corpus is decompressed first), with word2vec.c's settings
(dim 100, window 5, sample 1e-3, min_count 5, ``--epochs``), the same as
``compare_quality.py`` (whose command builders this script uses; sgjax gets the plain text
here too): sgjax runs ``sgjax train`` from its defaults plus the model choice; gensim 4
``Word2Vec(corpus_file=..., workers=2)``; fastText ``-minn 0 -maxn 0 -thread 2``; the C
tool ``-threads 2``. The order of the tools rotates from one run to the next
(``--repeats``; the slow anchors run ``--anchor-repeats`` times), so a noisy
machine slows all alike. Two times per run:

- ``wall_s``: the whole process, from its start to its exit (vocabulary, encoding, JAX
  start-up and compilation, training, evaluation, checkpoints, writing the vectors);
- ``train_s``: training only. sgjax: the fit loop, its compilation included (``train`` +
  ``compile`` of the run's phases); gensim: ``Word2Vec.train`` after ``build_vocab``;
  fastText and the C tool: from their first progress line to their exit (so their time to
  write the vectors is in it: pessimistic by ~0.5 s).

``words_per_s`` = corpus tokens (whitespace-separated, before min_count and subsampling)
x epochs / seconds, the same numerator for every tool. Every vectors file is scored by
one evaluator (``compare_quality.scores``). sgjax's per-phase seconds (:mod:`sgjax.timing`)
come from its run's ``metrics.jsonl``. sgjax's compilation cache is a fresh directory per
invocation, so its first run of each model compiles cold (``wall_s_cold``) and the others
hit the cache, as a user's second run does.

The full softmax (``sg-softmax``, ``cbow-softmax``): sgjax at the corpus's whole vocabulary,
1 epoch (``--softmax-epochs``); fastText ``-loss softmax`` is timed from its own progress
report (``words/sec/thread`` x threads) after ``--softmax-budget`` seconds, as it needs hours
for an epoch. ``--gflops`` also times sgjax's softmax step in this process against plain
``jnp.dot`` products of the same shapes (:func:`softmax_gflops`).

    python scripts/bench_speed.py                                   # realtext-v1, 4 models
    python scripts/bench_speed.py --models sg-softmax --gflops --repeats 1
    python scripts/bench_speed.py --corpus mixed=/tmp/mixed-v1.txt --repeats 3

Prints one JSON object per run, then a summary JSON object and Markdown tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("compare_quality", HERE / "compare_quality.py")
cq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cq)

ANCHOR_MODELS = cq.MODELS  # sg-ns, cbow-ns, sg-hs, cbow-hs: every anchor has them
SOFTMAX_MODELS = ("sg-softmax", "cbow-softmax")
OTHER_MODELS = ("sg-nce", "sg-sampled")  # sgjax only
MODELS = ANCHOR_MODELS + SOFTMAX_MODELS + OTHER_MODELS
TOOLS = ("sgjax", "gensim", "fasttext", "c")
GENSIM = (
    "import json,sys,time\nfrom gensim.models import Word2Vec\nk=json.loads(sys.argv[1])\n"
    "e=k.pop('epochs');m=Word2Vec(**k)\nt=time.perf_counter()\n"
    "m.build_vocab(corpus_file=sys.argv[2])\nv=time.perf_counter()\n"
    "m.train(corpus_file=sys.argv[2],total_words=m.corpus_total_words,epochs=e)\n"
    "print(json.dumps({'vocab_s':v-t,'train_s':time.perf_counter()-v}))\n"
    "m.wv.save_word2vec_format(sys.argv[3],binary=True)"
)
#: The first progress output of fastText (-verbose 2) and the C tool: training has begun.
STARTED = {"fasttext": b"Progress:", "c": b"Alpha:"}
FT_RATE = re.compile(rb"words/sec/thread:\s*(\d+)")


def base_model(model: str) -> str:
    """The anchors' model of a name (``sg-softmax`` -> its sg settings, loss aside)."""
    return model if model in ANCHOR_MODELS else model.split("-")[0] + "-ns"


def command(tool, model, corpus, repeat, tmp, args) -> tuple[list[str], str]:
    """The command line of one run and the vectors file it writes."""
    _, text = corpus
    out = os.path.join(tmp, "v")
    softmax = model in SOFTMAX_MODELS
    epochs = args.softmax_epochs if softmax else args.epochs
    if tool == "sgjax":  # the same plain-text file as the anchors (sgjax reads .xz too)
        cmd = cq.sgjax_cmd(model, text, repeat, epochs, out, args.overrides)
        return cmd, os.path.join(out, "vectors.bin")
    base = base_model(model)
    if tool == "gensim":
        kw = cq.gensim_kwargs(base, repeat, epochs, cq.THREADS)
        return [sys.executable, "-c", GENSIM, json.dumps(kw), text, out], out
    if tool == "c":
        return cq.c_cmd(args.c_binary, base, text, epochs, out), out
    cmd = cq.fasttext_cmd(args.fasttext_binary, base, text, repeat, epochs, out)
    cmd[cmd.index("-verbose") + 1] = "2"  # progress lines: when training starts, its rate
    if softmax:
        cmd[cmd.index("-loss") + 1] = "softmax"
    return cmd, out + ".vec"


def timed(cmd: list[str], marker: bytes | None, budget: float | None) -> dict[str, Any]:
    """Run ``cmd``; its wall time, the time from the first ``marker`` in its output to its
    exit, its output's tail; stopped after ``budget`` seconds if given."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.set_blocking(p.stdout.fileno(), False)
    seen: float | None = None
    tail = b""
    stopped = False
    while True:
        chunk = b""
        try:
            chunk = os.read(p.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            pass
        if chunk:
            tail = (tail + chunk)[-20000:]
            if seen is None and marker and marker in tail:
                seen = time.perf_counter()
        elif p.poll() is not None:
            break
        else:
            time.sleep(0.005)
        if budget is not None and time.perf_counter() - t0 > budget and not stopped:
            p.kill()
            stopped = True
    end = time.perf_counter()
    rec: dict[str, Any] = {"wall_s": end - t0, "returncode": p.returncode, "stopped": stopped}
    if seen is not None:
        rec["train_s"] = end - seen
    rec["tail"] = tail
    return rec


def run_one(tool, model, corpus, repeat, tmp, args, words: int) -> dict[str, Any]:
    cmd, vectors = command(tool, model, corpus, repeat, tmp, args)
    softmax = model in SOFTMAX_MODELS
    budget = args.softmax_budget if softmax and tool == "fasttext" else None
    r = timed(cmd, STARTED.get(tool), budget)
    tail = r.pop("tail")
    epochs = args.softmax_epochs if softmax else args.epochs
    rec: dict[str, Any] = {"wall_s": r["wall_s"], "cmd": shlex.join(cmd)}
    if budget is not None:  # fastText's own rate report, not a finished run
        rates = FT_RATE.findall(tail)
        if not rates:
            return {**rec, "error": "no words/sec/thread in fastText's output"}
        rate = int(rates[-1]) * cq.THREADS
        return {**rec, "train_words_per_s": rate, "note": f"rate after {budget:.0f} s"}
    if r["returncode"] != 0 or not os.path.exists(vectors):
        return {**rec, "error": f"exit {r['returncode']}: {tail[-2000:].decode(errors='replace')}"}
    if tool == "gensim":
        rec.update(json.loads(tail.decode().splitlines()[0]))
    elif tool == "sgjax":
        end = json.loads((Path(vectors).parent / "metrics.jsonl").read_text().splitlines()[-1])
        rec["phases_s"] = end["phases_s"]
        rec["train_s"] = end["phases_s"]["train"] + end["phases_s"].get("compile", 0.0)
    elif "train_s" in r:
        rec["train_s"] = r["train_s"]
    rec["wall_words_per_s"] = words * epochs / rec["wall_s"]
    if "train_s" in rec:
        rec["train_words_per_s"] = words * epochs / rec["train_s"]
    return {**rec, **cq.scores(vectors)}


def corpus_tokens(path: str) -> int:
    with open(path, "rb") as f:
        return sum(len(line.split()) for line in f)


def softmax_gflops(corpus: str, model: str, calls: int, extra: list[str]) -> dict[str, Any]:
    """sgjax's full-softmax step against plain ``jnp.dot`` products of its shapes, in this
    process: ``calls`` compiled calls of 10 steps on the corpus's first batches (after one
    that compiles), FLOPs = 3 products x 2 (B H) N V a step; the reference times the three
    products of the rule (u = h W'^T, EH = P W', dW'^T = h^T P) one after another."""
    import jax

    from sgjax.batches import epoch_batches
    from sgjax.config import load_config
    from sgjax.experiment import build
    from sgjax.loop import group_batches
    from sgjax.train import train_step_jit

    arch, output = cq.model_choice(model)
    sets = [f"model.architecture={arch}", f"model.output={output}", f"data.corpus={corpus}"]
    cfg = load_config(None, sets + ["train.steps_per_call=10", *extra])
    run = build(cfg)
    m, t = cfg.model, cfg.train
    batches = epoch_batches(
        run.encoded, run.vocab, window=m.window, sample=cfg.data.sample,
        batch_size=t.batch_size, seed=t.seed, epoch=0, window_buckets=t.window_buckets,
        shuffle=cfg.data.shuffle,
    )  # fmt: skip
    groups = group_batches(batches, t.steps_per_call)
    first, rest = next(groups), [next(groups) for _ in range(calls)]
    state, metrics = train_step_jit(run.state, first, run.tables, run.spec)
    jax.block_until_ready(metrics)
    w0, t0 = int(state.words), time.perf_counter()
    for g in rest:
        state, metrics = train_step_jit(state, g, run.tables, run.spec)
    jax.block_until_ready(state.params)
    step_s = (time.perf_counter() - t0) / (calls * t.steps_per_call)
    words_per_s = (int(state.words) - w0) / (step_s * calls * t.steps_per_call)
    V, N = len(run.vocab), m.dim
    BH = t.batch_size * (1 if arch == "cbow" or m.skipgram_input == "center" else 2 * m.window)
    flops = 3 * 2 * BH * N * V
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    h, W = jax.random.normal(k[0], (BH, N)), jax.random.normal(k[1], (V, N))
    P = jax.random.uniform(k[2], (BH, V))
    products = [
        jax.jit(lambda h, W, P: h @ W.T),
        jax.jit(lambda h, W, P: P @ W),
        jax.jit(lambda h, W, P: h.T @ P),
    ]
    best = []
    for f in products:
        f(h, W, P).block_until_ready()
        reps = []
        for _ in range(5):
            t1 = time.perf_counter()
            f(h, W, P).block_until_ready()
            reps.append(time.perf_counter() - t1)
        best.append(median(reps))
    dot_gflops = flops / sum(best) / 1e9
    step_gflops = flops / step_s / 1e9
    return {
        "model": model,
        "vocab": V,
        "dim": N,
        "rows_per_step": BH,
        "step_ms": round(step_s * 1e3, 2),
        "steady_words_per_s": round(words_per_s),
        "step_gflops": round(step_gflops, 1),
        "dot_gflops": round(dot_gflops, 1),
        "dot_ms": [round(x * 1e3, 2) for x in best],
        "step_share_of_dot": round(step_gflops / dot_gflops, 3),
    }


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per corpus x model x tool, and sgjax's ratios and bars per corpus x model."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if "error" not in r and "tool" in r:
            groups.setdefault((r["corpus"], r["model"], r["tool"]), []).append(r)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for (corpus, model, tool), rs in groups.items():
        cell: dict[str, Any] = {"runs": len(rs)}
        for key in ("wall_s", "train_s", "wall_words_per_s", "train_words_per_s"):
            xs = [r[key] for r in rs if key in r]
            if xs:
                cell[key] = median(xs)
        for key in ("analogy", "wordsim_spearman"):
            xs = [r[key] for r in rs if r.get(key) is not None]
            if xs:
                cell[key] = median(xs)
        if tool == "sgjax":
            cold = [r for r in rs if r.get("cold")]
            warm = [r for r in rs if not r.get("cold")] or rs
            if cold:
                cell["wall_s_cold"] = cold[0]["wall_s"]
            cell["wall_s"] = median(r["wall_s"] for r in warm)
            cell["wall_words_per_s"] = median(r["wall_words_per_s"] for r in warm)
            phases = {p for r in warm for p in r.get("phases_s", {})}
            cell["phases_s"] = {
                p: round(median(r["phases_s"].get(p, 0.0) for r in warm), 3) for p in phases
            }
        cells.setdefault(corpus, {}).setdefault(model, {})[tool] = cell
    bars = {c: {m: bar(m, tools) for m, tools in ms.items()} for c, ms in cells.items()}
    return {"cells": cells, "bars": bars}


#: Done-means of the speed issue: sgjax's whole-process words/s over each anchor's.
SPEED_BARS = {"gensim": 1.2, "fasttext": 1.5, "c": 1.5}
SOFTMAX_BAR = 30.0  # x fastText -loss softmax
QUALITY_BARS = {"analogy": 0.005, "wordsim_spearman": 0.01}  # within gensim's


def bar(model: str, tools: dict[str, Any]) -> dict[str, Any]:
    s = tools.get("sgjax")
    out: dict[str, Any] = {}
    if not s or "wall_words_per_s" not in s:
        return out
    for tool in ("gensim", "fasttext", "c"):
        t = tools.get(tool)
        if not t:
            continue
        if model in SOFTMAX_MODELS:
            if tool == "fasttext" and "train_words_per_s" in t:
                out["x_fasttext"] = s["wall_words_per_s"] / t["train_words_per_s"]
                out["ok_fasttext"] = out["x_fasttext"] >= SOFTMAX_BAR
            continue
        if "wall_words_per_s" in t:
            out[f"x_{tool}"] = s["wall_words_per_s"] / t["wall_words_per_s"]
            out[f"ok_{tool}"] = out[f"x_{tool}"] >= SPEED_BARS[tool]
        if "train_words_per_s" in t and "train_words_per_s" in s:
            out[f"train_x_{tool}"] = s["train_words_per_s"] / t["train_words_per_s"]
    g = tools.get("gensim")
    if g and model in ANCHOR_MODELS:
        for key, tol in QUALITY_BARS.items():
            if key in s and key in g:
                out[f"{key}_minus_gensim"] = s[key] - g[key]
                out[f"ok_{key}"] = s[key] - g[key] >= -tol
    return out


def verdict(b: dict[str, Any]) -> str:
    oks = {k: v for k, v in b.items() if k.startswith("ok_")}
    if not oks:
        return "n/a"
    missed = [k[3:] for k, v in oks.items() if not v]
    return "met" if not missed else "missed: " + ", ".join(missed)


def _f(x: Any, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| corpus | model | tool | whole s | whole words/s | train s | train words/s "
        "| x tool (whole) | x tool (train) | analogy | WordSim |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for corpus, models in summary["cells"].items():
        for model, tools in models.items():
            b = summary["bars"][corpus][model]
            for tool in [t for t in TOOLS if t in tools]:
                c = tools[tool]
                wall = _f(c.get("wall_s"), ".1f")
                if tool == "sgjax" and "wall_s_cold" in c:
                    wall += f" ({c['wall_s_cold']:.1f} cold)"
                lines.append(
                    f"| {corpus} | {model} | {tool} | {wall} "
                    f"| {_f(c.get('wall_words_per_s'), ',.0f')} "
                    f"| {_f(c.get('train_s'), '.1f')} | {_f(c.get('train_words_per_s'), ',.0f')} "
                    f"| {_f(b.get(f'x_{tool}'), '.2f')} | {_f(b.get(f'train_x_{tool}'), '.2f')} "
                    f"| {_f(c.get('analogy'), '.4f')} | {_f(c.get('wordsim_spearman'), '.3f')} |"
                )
            lines.append(f"| {corpus} | {model} | **bars** | {verdict(b)} | | | | | | | |")
    lines += ["", "sgjax's phases (seconds, medians of the warm-cache runs):", ""]
    phases = (
        "import",
        "vocab",
        "encode",
        "setup",
        "compile",
        "train",
        "eval",
        "checkpoint",
        "write",
    )
    lines += ["| corpus | model | " + " | ".join(phases) + " |"]
    lines += ["| --- | --- |" + " ---: |" * len(phases)]
    for corpus, models in summary["cells"].items():
        for model, tools in models.items():
            p = tools.get("sgjax", {}).get("phases_s")
            if p:
                row = " | ".join(_f(p.get(k), ".2f") for k in phases)
                lines.append(f"| {corpus} | {model} | {row} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--corpus",
        type=cq.parse_corpus,
        action="append",
        metavar="NAME=PATH",
        help="text file (.xz ok), repeatable; default realtext-v1 (shipped)",
    )
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(ANCHOR_MODELS))
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    ap.add_argument("--repeats", type=int, default=3, help="runs of sgjax and gensim")
    ap.add_argument("--anchor-repeats", type=int, default=1, help="runs of fastText and C")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--softmax-epochs", type=int, default=1)
    ap.add_argument("--softmax-budget", type=float, default=60.0, help="fastText softmax, s")
    ap.add_argument("--gflops", action="store_true", help="time the softmax step vs jnp.dot")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    bench = os.path.join(tempfile.gettempdir(), "sgjax-bench", "word2vec")
    ap.add_argument("--c-binary", default=bench, help="word2vec.c (default: %(default)s)")
    ap.add_argument("--fasttext-binary", default=shutil.which("fasttext") or "/usr/bin/fasttext")
    ap.add_argument("--json", help="write all records and the summary here")
    ap.add_argument("--markdown", help="write the Markdown tables here")
    return ap


def main(argv: list[str] | None = None) -> None:
    from sgjax.experiment import default_corpus

    args = build_parser().parse_args(argv)
    tools = []
    for t in dict.fromkeys(args.tools):
        binary = {"c": args.c_binary, "fasttext": args.fasttext_binary}.get(t)
        if binary and not os.access(binary, os.X_OK):
            print(json.dumps({"tool": t, "note": f"skipped: no executable {binary}"}), flush=True)
        else:
            tools.append(t)
    records: list[dict[str, Any]] = []
    k = 0
    with tempfile.TemporaryDirectory(prefix="bench_speed-") as tmp:
        os.environ["SGJAX_CACHE_DIR"] = os.path.join(tmp, "xla")  # cold first, then warm
        corpora = [
            c for n, p in args.corpus or [("realtext-v1", default_corpus())]
            for c in cq.prepare(n, p, tmp, False)
        ]  # fmt: skip
        for name, given, text in corpora:
            words = corpus_tokens(text)
            for repeat in range(args.repeats):
                for model in args.models:
                    usable = [
                        t for t in tools
                        if (t == "sgjax" or model not in OTHER_MODELS)
                        and (t in ("sgjax", "fasttext") or model not in SOFTMAX_MODELS)
                        and (t in ("sgjax", "gensim") or repeat < args.anchor_repeats)
                    ]  # fmt: skip
                    for tool in (
                        usable[k % max(len(usable), 1) :] + usable[: k % max(len(usable), 1)]
                    ):
                        run_dir = tempfile.mkdtemp(dir=tmp)
                        rec = {"corpus": name, "model": model, "tool": tool, "repeat": repeat}
                        rec["cold"] = tool == "sgjax" and repeat == 0
                        rec.update(
                            run_one(tool, model, (given, text), repeat, run_dir, args, words)
                        )
                        shutil.rmtree(run_dir, ignore_errors=True)
                        records.append(rec)
                        print(json.dumps(rec), flush=True)
                    k += 1
            if args.gflops:
                for model in [m for m in args.models if m in SOFTMAX_MODELS]:
                    g = {"corpus": name, "gflops": True}
                    g.update(softmax_gflops(given, model, 4, args.overrides))
                    records.append(g)
                    print(json.dumps(g), flush=True)
    summary = {
        "summary": True,
        "errors": sum("error" in r for r in records),
        "epochs": args.epochs,
        "repeats": args.repeats,
        "anchor_repeats": args.anchor_repeats,
        "tools": tools,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "gflops": [r for r in records if r.get("gflops")],
        **summarize(records),
    }
    cq.emit(summary, markdown(summary), records, args)


if __name__ == "__main__":
    main()
