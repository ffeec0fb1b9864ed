"""Training throughput and quality of sgjax against gensim (and word2vec.c) on the same
corpus with the same settings, in one process, alternating runs.

For each corpus every repeat trains gensim and sgjax (and the C tool with ``--c-binary``, built
by ``scripts/build_word2vec_c.sh``, in the first ``--c-repeats`` repeats: it is the slowest),
the order alternating from one repeat to the next so that a machine shared with other jobs
slows both alike, then evaluates all vectors with the same evaluator (:mod:`sgjax.evaluate`:
3CosAdd analogy accuracy on questions-words within the 30,000 most frequent words, and the
Spearman correlation on WordSim-353). Settings come from ``--config`` (+ ``--set``
overrides): model.dim, model.window, model.negatives, data.sample, data.min_count,
data.ns_exponent, optimizer.learning_rate and train.epochs are passed to gensim
(``Word2Vec(corpus_file=..., sg=1 or 0, hs=0, ...)``) and to the C tool too.

Timing: training only, for every tool. sgjax: the sum of ``epoch_time_s`` of its run
(``metrics.jsonl``: the fit loop's wall time per epoch, host batch generation and the first
compilation of the step included; vocabulary, corpus encoding, checkpoints and evaluation
not). gensim: the wall time of ``Word2Vec.train`` after ``build_vocab``. The C tool: the
wall time of the whole process (it builds its vocabulary too, so its figure is pessimistic).
``words_per_s`` = corpus tokens (whitespace-separated, before min_count and subsampling,
gensim's ``corpus_total_words``) x epochs / training seconds, the same numerator for every
tool; ``ratio`` = sgjax / gensim of the medians over repeats.

Corpora (``--corpus``, repeatable): ``realtext-v1`` (the shipped 3.05M-token corpus),
``zipf-text8`` (a text8-sized synthetic Zipf corpus: 17,005,207 tokens, ~71k words with
count >= 5, written once with a fixed seed by ``scripts/make_zipf_corpus.py --preset text8``
into ``--work-dir`` as one line like text8, then cut into lines of 1000 tokens, where
sgjax and word2vec.c cut long lines anyway: see :func:`reflow`), or a path (plain text or
.gz/.bz2/.xz, one sentence a line). The Zipf corpus's words are letter strings with no
meaning, so its analogy and WordSim scores are noise for every tool: only speed is
compared there.

``--scaling`` adds a table of one-epoch runs of both tools that vary one thing at a time:
corpus size and vocabulary size (synthetic Zipf corpora, cut into lines like zipf-text8),
dim and negatives (realtext-v1). A one-epoch sgjax run includes its first call (the step's
compilation, ~1-3 s), so each row also gives sgjax's rate after the first call
(``sgjax_steady_words_per_s``): how the running time grows. Alone, unless ``--corpus`` is
given too.

``--batch-sweep`` trains sgjax on realtext-v1 at several batch sizes, with and without
``train.row_update_cap``, against one gensim run: what summing the updates of a frequent
word within a batch does to quality. Alone, unless ``--corpus`` is given too.

The last line printed is one JSON object; progress goes to stderr.

    python scripts/bench_throughput.py                         # both corpora, 5 epochs
    python scripts/bench_throughput.py --corpus realtext-v1 --repeats 3
    python scripts/bench_throughput.py --scaling
    python scripts/bench_throughput.py --batch-sweep
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import lzma
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "sg_ns.yaml"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Corpora


def make_zipf(out: Path, tokens: int, vocab: int, exponent: float, seed: int = 0) -> Path:
    """A single-line Zipf corpus via scripts/make_zipf_corpus.py (kept if already there)."""
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        cmd = [
            sys.executable,
            str(REPO / "scripts" / "make_zipf_corpus.py"),
            "--out",
            str(tmp),
            "--tokens",
            str(tokens),
            "--vocab",
            str(vocab),
            "--exponent",
            str(exponent),
            "--seed",
            str(seed),
            "--single-line",
        ]
        log(f"writing {out} ({tokens:,} tokens, {vocab:,} types)")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        tmp.rename(out)
    return out


def plain_text(path: Path, work: Path) -> Path:
    """gensim's corpus_file mode and the C tool read plain text: decompress once."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix)
    if opener is None:
        return path
    out = work / (path.stem + ".plain.txt")
    if not out.exists() or out.stat().st_mtime < path.stat().st_mtime:
        log(f"decompressing {path} -> {out}")
        with opener(path, "rb") as src, open(out.with_suffix(".tmp"), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        out.with_suffix(".tmp").rename(out)
    return out


def reflow(path: Path, out: Path, tokens_per_line: int = 1000) -> Path:
    """The corpus with a line break after every ``tokens_per_line`` tokens. sgjax (like
    word2vec.c) cuts longer lines into pieces of max_line_tokens = 1000 anyway; gensim's
    corpus_file mode splits its work between workers by lines, so on a one-line corpus
    (text8's form) it runs on one core: with the lines cut where sgjax cuts them, both tools
    see the same sentences and gensim gets all its workers."""
    if not out.exists():
        log(f"reflowing {path} -> {out} ({tokens_per_line} tokens a line)")
        tmp = out.with_name(out.name + ".tmp")
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            rest: list[bytes] = []
            while chunk := src.read(1 << 24):
                words = chunk.split()
                if chunk[-1:].isspace():
                    words, tail = words, []
                else:
                    words, tail = words[:-1], words[-1:]
                rest += words
                n = len(rest) // tokens_per_line * tokens_per_line
                for i in range(0, n, tokens_per_line):
                    dst.write(b" ".join(rest[i : i + tokens_per_line]) + b"\n")
                rest = rest[n:] + tail
            for i in range(0, len(rest), tokens_per_line):
                dst.write(b" ".join(rest[i : i + tokens_per_line]) + b"\n")
        tmp.rename(out)
    return out


def resolve_corpus(name: str, work: Path) -> tuple[str, Path]:
    if name == "realtext-v1":
        from sgjax.experiment import default_corpus

        return name, plain_text(Path(default_corpus()), work)
    if name == "zipf-text8":  # make_zipf_corpus.py --preset text8, cut into 1000-token lines
        one_line = make_zipf(work / "zipf-text8.txt", 17_005_207, 335_000, 1.222)
        return name, reflow(one_line, work / "zipf-text8-lines.txt")
    path = Path(name)
    if not path.exists():
        raise SystemExit(f"--corpus {name}: no such file (or realtext-v1, zipf-text8)")
    return path.name, plain_text(path, work)


# --------------------------------------------------------------------------------------------
# Settings shared by the tools


def settings(cfg: Any) -> dict:
    m, d, o, t = cfg.model, cfg.data, cfg.optimizer, cfg.train
    if str(m.output) != "negative":
        raise SystemExit("bench_throughput compares negative sampling (model.output=negative)")
    return {
        "architecture": str(m.architecture),
        "dim": m.dim,
        "window": m.window,
        "negatives": m.negatives,
        "sample": d.sample,
        "min_count": d.min_count,
        "ns_exponent": d.ns_exponent,
        "alpha": o.learning_rate,
        "epochs": t.epochs,
    }


def scores_of(vectors: Any) -> dict:
    from sgjax.evaluate import NoValidPairsError, evaluate_word_analogies, evaluate_word_pairs

    a = evaluate_word_analogies(vectors)
    out = {"analogy": round(a.score, 4), "analogy_evaluated": a.total.evaluated}
    try:
        rho = float(evaluate_word_pairs(vectors).spearman)
        out["wordsim_spearman"] = round(rho, 4) if math.isfinite(rho) else None
    except NoValidPairsError:
        out["wordsim_spearman"] = None
    return out


# --------------------------------------------------------------------------------------------
# The tools


def run_sgjax(cfg: Any, corpus: Path, work: Path, tag: str) -> dict:
    from sgjax.config import config_from_dict, to_dict
    from sgjax.experiment import train

    d = to_dict(cfg)
    d["data"]["corpus"] = str(corpus)
    d["data"]["cache_dir"] = str(work / f"cache-{corpus.name}")
    d["eval"]["analogies"] = False
    d["eval"]["similarity"] = False
    run_cfg = config_from_dict(d)
    out = Path(tempfile.mkdtemp(prefix=f"sgjax-{tag}-", dir=work))
    try:
        t0 = time.perf_counter()
        result = train(run_cfg, out, progress=False, evaluate_each_epoch=False)
        total = time.perf_counter() - t0
        epochs = [
            json.loads(line)
            for line in (out / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["event"] == "epoch"
        ]
        manifest = json.loads((Path(d["data"]["cache_dir"]) / "manifest.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    train_s = sum(e["epoch_time_s"] for e in epochs)
    raw = int(manifest["raw_tokens"])
    # without the run's first call (batches of the first call built, the step compiled): the
    # rate once running, in corpus tokens (the epochs' words are in-vocabulary tokens)
    first_s, first_words = epochs[0]["first_call_s"], epochs[0]["first_call_words"]
    words = sum(e["words"] for e in epochs)
    rest_s, per_epoch = train_s - first_s, max(words / len(epochs), 1)
    steady = (words - first_words) / rest_s * raw / per_epoch if words > first_words else None
    return {
        "train_s": round(train_s, 2),
        "words_per_s": round(raw * len(epochs) / train_s),
        "first_call_s": round(first_s, 2),
        "steady_words_per_s": round(steady) if steady else None,  # None: one call in all
        "epoch_s": [round(e["epoch_time_s"], 2) for e in epochs],
        "call_total_s": round(total, 2),
        "corpus_tokens": raw,
        "vocab_size": len(result.vectors),
        **scores_of(result.vectors),
    }


def run_gensim(s: dict, corpus: Path, workers: int, seed: int) -> dict:
    from gensim.models import Word2Vec

    from sgjax.vectors import WordVectors

    model = Word2Vec(
        vector_size=s["dim"],
        window=s["window"],
        min_count=s["min_count"],
        sg=1 if s["architecture"] == "skipgram" else 0,
        hs=0,
        negative=s["negatives"],
        ns_exponent=s["ns_exponent"],
        sample=s["sample"],
        alpha=s["alpha"],
        workers=workers,
        seed=seed,
    )
    model.build_vocab(corpus_file=str(corpus))
    t0 = time.perf_counter()
    model.train(
        corpus_file=str(corpus),
        epochs=s["epochs"],
        total_examples=model.corpus_count,
        total_words=model.corpus_total_words,
    )
    train_s = time.perf_counter() - t0
    raw = int(model.corpus_total_words)
    vectors = WordVectors.from_params(model.wv.index_to_key, model.wv.vectors)
    return {
        "train_s": round(train_s, 2),
        "words_per_s": round(raw * s["epochs"] / train_s),
        "corpus_tokens": raw,
        "vocab_size": len(vectors),
        **scores_of(vectors),
    }


def run_c(binary: str, s: dict, corpus: Path, threads: int, work: Path) -> dict:
    from sgjax.vectors import read_word2vec

    out = work / "c-vectors.bin"
    cmd = [binary, "-train", str(corpus), "-output", str(out), "-binary", "1"]
    cmd += ["-cbow", "0" if s["architecture"] == "skipgram" else "1", "-hs", "0"]
    cmd += ["-size", str(s["dim"]), "-window", str(s["window"]), "-negative", str(s["negatives"])]
    cmd += ["-sample", str(s["sample"]), "-min-count", str(s["min_count"])]
    cmd += ["-alpha", str(s["alpha"]), "-iter", str(s["epochs"]), "-threads", str(threads)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    vectors = read_word2vec(out)
    out.unlink(missing_ok=True)
    return {"train_s": round(wall, 2), "vocab_size": len(vectors), **scores_of(vectors)}


# --------------------------------------------------------------------------------------------


def summarize(runs: list[dict]) -> dict:
    """Medians over the repeats (``words_per_s``, ``train_s``, scores) and every run."""
    out: dict = {}
    for k, digits in (("words_per_s", 0), ("train_s", 2), ("analogy", 4), ("wordsim_spearman", 4)):
        vals = [r[k] for r in runs if r.get(k) is not None]
        out[k] = round(statistics.median(vals), digits) if vals else None
    out["words_per_s"] = int(out["words_per_s"]) if out["words_per_s"] is not None else None
    for k in ("corpus_tokens", "vocab_size", "analogy_evaluated"):
        if k in runs[0]:
            out[k] = runs[0][k]
    out["runs"] = runs
    return out


def compare(
    cfg: Any, name: str, corpus: Path, args: argparse.Namespace, work: Path, repeats: int
) -> dict:
    s = settings(cfg)
    results: dict[str, list[dict]] = {"gensim": [], "sgjax": []}
    if args.c_binary:
        results["word2vec_c"] = []
    for r in range(repeats):
        order = (
            ["gensim", "sgjax", "word2vec_c"] if r % 2 == 0 else ["sgjax", "gensim", "word2vec_c"]
        )
        for tool in order:
            if tool not in results or (tool == "word2vec_c" and r >= args.c_repeats):
                continue
            log(f"[{name}] repeat {r + 1}/{repeats}: {tool} ...")
            if tool == "gensim":
                res = run_gensim(s, corpus, args.gensim_workers, seed=r + 1)
            elif tool == "sgjax":
                res = run_sgjax(cfg, corpus, work, name)
            else:
                res = run_c(args.c_binary, s, corpus, args.gensim_workers, work)
                res["words_per_s"] = (
                    round(results["gensim"][-1]["corpus_tokens"] * s["epochs"] / res["train_s"])
                    if results["gensim"]
                    else None
                )
            log(f"[{name}] {tool}: {json.dumps(res)}")
            results[tool].append(res)
    out: dict = {"corpus": name, "path": str(corpus), "settings": s}
    out.update({tool: summarize(runs) for tool, runs in results.items()})
    g, j = out["gensim"], out["sgjax"]
    out["ratio_sgjax_over_gensim"] = round(j["words_per_s"] / g["words_per_s"], 3)
    if j.get("analogy") is not None and g.get("analogy") is not None:
        out["analogy_sgjax_minus_gensim"] = round(j["analogy"] - g["analogy"], 4)
    return out


def scaling(base_cfg: Any, args: argparse.Namespace, work: Path) -> list[dict]:
    """One-epoch runs of gensim and sgjax varying one thing at a time."""
    from sgjax.config import config_from_dict, to_dict

    def cfg_with(**changes: Any) -> Any:
        d = to_dict(base_cfg)
        d["train"]["epochs"] = 1
        for key, value in changes.items():
            section, field = key.split("__")
            d[section][field] = value
        return config_from_dict(d)

    _, realtext = resolve_corpus("realtext-v1", work)
    rows: list[tuple[str, Any, Any, Path]] = []

    def zipf(name: str, tokens: int, types: int, exponent: float) -> Path:
        one_line = make_zipf(work / f"{name}.txt", tokens, types, exponent)
        return reflow(one_line, work / f"{name}-lines.txt")  # all of gensim's workers busy

    for tokens in (1_000_000, 4_000_000, 17_005_207):
        corpus = zipf(f"zipf-{tokens}", tokens, 335_000, 1.222)
        rows.append(("corpus_tokens", tokens, cfg_with(), corpus))
    for types in (10_000, 100_000, 1_000_000):
        corpus = zipf(f"zipf-4m-{types}", 4_000_000, types, 1.0)
        rows.append(("zipf_types", types, cfg_with(), corpus))
    for dim in (50, 100, 200, 300):
        rows.append(("dim", dim, cfg_with(model__dim=dim), realtext))
    for k in (2, 5, 10, 20):
        rows.append(("negatives", k, cfg_with(model__negatives=k), realtext))
    table = []
    for i, (what, value, cfg, corpus) in enumerate(rows):
        s = settings(cfg)
        tools = ("gensim", "sgjax") if i % 2 == 0 else ("sgjax", "gensim")
        res: dict = {}
        for tool in tools:
            log(f"[scaling] {what}={value}: {tool} ...")
            if tool == "gensim":
                res[tool] = run_gensim(s, corpus, args.gensim_workers, seed=1)
            else:
                res[tool] = run_sgjax(cfg, corpus, work, f"scaling-{what}-{value}")
        steady = res["sgjax"]["steady_words_per_s"]
        row = {
            "vary": what,
            "value": value,
            "corpus": corpus.name,
            "corpus_tokens": res["gensim"]["corpus_tokens"],
            "vocab_size": res["sgjax"]["vocab_size"],
            "gensim_s": res["gensim"]["train_s"],
            "sgjax_s": res["sgjax"]["train_s"],
            "gensim_words_per_s": res["gensim"]["words_per_s"],
            "sgjax_words_per_s": res["sgjax"]["words_per_s"],
            "ratio": round(res["sgjax"]["words_per_s"] / res["gensim"]["words_per_s"], 3),
            "sgjax_first_call_s": res["sgjax"]["first_call_s"],
            "sgjax_steady_words_per_s": steady,
            "steady_ratio": round(steady / res["gensim"]["words_per_s"], 3) if steady else None,
        }
        log(f"[scaling] {json.dumps(row)}")
        table.append(row)
    return table


def batch_sweep(base_cfg: Any, args: argparse.Namespace, work: Path) -> dict:
    """Quality against batch size on realtext-v1 (``--batch-sweep``): sgjax at each
    ``--batch-sizes`` value with each ``--caps`` value of train.row_update_cap (all epochs
    of the config), and one gensim run for reference."""
    from sgjax.config import config_from_dict, to_dict
    from sgjax.train import NonFiniteLossError

    _, corpus = resolve_corpus("realtext-v1", work)
    log("[batch sweep] gensim ...")
    ref = run_gensim(settings(base_cfg), corpus, args.gensim_workers, seed=1)
    rows = []
    for B in (int(x) for x in args.batch_sizes.split(",")):
        for cap in (int(x) for x in args.caps.split(",")):
            d = to_dict(base_cfg)
            d["train"]["batch_size"] = B
            d["train"]["row_update_cap"] = cap
            # calls of about the same number of examples at every batch size
            d["train"]["steps_per_call"] = max(1, min(400, 128_000 // B))
            log(f"[batch sweep] sgjax batch {B}, row_update_cap {cap} ...")
            row = {"batch_size": B, "row_update_cap": cap}
            try:
                res = run_sgjax(config_from_dict(d), corpus, work, f"sweep-{B}-{cap}")
            except NonFiniteLossError as e:
                row["diverged"] = str(e).split(";")[0]
            else:
                row.update(res, analogy_minus_gensim=round(res["analogy"] - ref["analogy"], 4))
            log(f"[batch sweep] {json.dumps(row)}")
            rows.append(row)
    return {"gensim": ref, "rows": rows}


def markdown(report: dict) -> str:
    """The results as Markdown tables (what BENCHMARKS.md shows)."""
    lines = [
        "| corpus | tool | words/s (median) | train s | ratio sgjax/gensim | analogy | "
        "WordSim Spearman | runs (words/s) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for res in report["results"]:
        for tool in ("sgjax", "gensim", "word2vec_c"):
            if tool not in res:
                continue
            r = res[tool]
            ratio = res["ratio_sgjax_over_gensim"] if tool == "sgjax" else ""
            runs = ", ".join(f"{x['words_per_s']:,}" for x in r["runs"] if x.get("words_per_s"))
            lines.append(
                f"| {res['corpus']} | {tool} | {r['words_per_s']:,} | {r['train_s']} | {ratio} | "
                f"{r['analogy']} | {r['wordsim_spearman']} | {runs} |"
            )
    if report.get("scaling"):
        lines += [
            "",
            "| vary | value | corpus tokens | vocab | gensim s | sgjax s (first call) | "
            "gensim words/s | sgjax words/s | ratio | sgjax words/s after the first call | "
            "ratio after the first call |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in report["scaling"]:
            lines.append(
                f"| {row['vary']} | {row['value']:,} | {row['corpus_tokens']:,} | "
                f"{row['vocab_size']:,} | {row['gensim_s']} | {row['sgjax_s']} "
                f"({row['sgjax_first_call_s']}) | {row['gensim_words_per_s']:,} | "
                f"{row['sgjax_words_per_s']:,} | {row['ratio']} | "
                f"{row['sgjax_steady_words_per_s'] or 0:,} | {row['steady_ratio']} |"
            )
    if report.get("batch_sweep"):
        ref = report["batch_sweep"]["gensim"]
        lines += [
            "",
            "| batch size | row_update_cap | sgjax words/s | analogy | analogy - gensim | "
            "WordSim Spearman |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| gensim | | {ref['words_per_s']:,} | {ref['analogy']} | | "
            f"{ref['wordsim_spearman']} |",
        ]
        for row in report["batch_sweep"]["rows"]:
            if "diverged" in row:
                lines.append(
                    f"| {row['batch_size']:,} | {row['row_update_cap']} | | diverged "
                    f"({row['diverged']}) | | |"
                )
                continue
            lines.append(
                f"| {row['batch_size']:,} | {row['row_update_cap']} | {row['words_per_s']:,} | "
                f"{row['analogy']} | {row['analogy_minus_gensim']:+} | "
                f"{row['wordsim_spearman']} |"
            )
    return "\n".join(lines)


def device_info() -> dict:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--corpus",
        action="append",
        help="realtext-v1, zipf-text8 or a path; repeatable (default: realtext-v1 and zipf-text8)",
    )
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="sgjax config (%(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override")
    p.add_argument("--epochs", type=int, help="train.epochs for every tool (default: config's)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each tool per corpus")
    p.add_argument("--gensim-workers", type=int, default=2, help="gensim workers (C threads)")
    p.add_argument(
        "--c-binary", help="word2vec.c binary to time as well (scripts/build_word2vec_c.sh)"
    )
    p.add_argument(
        "--c-repeats",
        type=int,
        default=1,
        help="the C tool runs in the first this many repeats of each corpus (%(default)s)",
    )
    p.add_argument(
        "--scaling",
        action="store_true",
        help="the one-epoch scaling table (no --corpus comparison if --corpus is not given)",
    )
    p.add_argument(
        "--batch-sweep",
        action="store_true",
        help="quality against batch size on realtext-v1 (no --corpus comparison if "
        "--corpus is not given)",
    )
    p.add_argument("--batch-sizes", default="320,1280,5120,20480", help="for --batch-sweep")
    p.add_argument("--caps", default="0,64", help="row_update_cap values for --batch-sweep")
    p.add_argument(
        "--work-dir",
        default=str(Path(tempfile.gettempdir()) / "sgjax-bench"),
        help="generated corpora and caches (%(default)s)",
    )
    args = p.parse_args(argv)

    import gensim

    from sgjax.config import load_config

    overrides = list(args.set) + ([f"train.epochs={args.epochs}"] if args.epochs else [])
    cfg = load_config(args.config, overrides)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "config": args.config,
        "overrides": overrides,
        "device": device_info(),
        "gensim": gensim.__version__,
        "gensim_workers": args.gensim_workers,
        "repeats": args.repeats,
        "results": [],
    }
    t0 = time.perf_counter()
    only_tables = args.batch_sweep or args.scaling  # alone, unless --corpus is given too
    corpora = args.corpus or ([] if only_tables else ["realtext-v1", "zipf-text8"])
    for name in corpora:
        label, path = resolve_corpus(name, work)
        res = compare(cfg, label, path, args, work, args.repeats)
        log(
            f"[{label}] sgjax {res['sgjax']['words_per_s']:,} words/s, gensim "
            f"{res['gensim']['words_per_s']:,} words/s: ratio {res['ratio_sgjax_over_gensim']}"
        )
        report["results"].append(res)
    if args.scaling:
        report["scaling"] = scaling(cfg, args, work)
    if args.batch_sweep:
        report["batch_sweep"] = batch_sweep(cfg, args, work)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    log(markdown(report))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
