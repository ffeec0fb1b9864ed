"""Quality matrix of sgjax against its anchors: gensim (2 and 1 workers), word2vec.c, fastText.

Every tool trains the same model (sg-ns, cbow-ns, sg-hs, cbow-hs) on the same corpus with
word2vec.c's settings (dim 100, window 5, sample 1e-3, min_count 5, 5 epochs, negative 5 or
hs 1, learning rate 0.025 skip-gram / 0.05 CBOW, CBOW mean of the context), for several
seeds, each tool in its own process, and every vector file is scored by ONE evaluator,
sgjax.evaluate: analogy accuracy within the 30,000 most frequent words and WordSim-353
Spearman. sgjax runs as a user runs it, ``sgjax train`` from its defaults plus the model
choice only (and any ``--set K=V`` given here), so its defaults are what is measured.

Output on stdout: one JSON object per run as it finishes, a summary JSON object (medians,
min and max over seeds; sgjax - gensim2 and sgjax - c with the bars analogy >= gensim2 -
0.002, Spearman >= gensim2 - 0.01, both >= c), then a Markdown table. The README's
"Quality against the anchors" gives the commands of its table.

A quick look: ``python scripts/compare_quality.py --models sg-ns cbow-hs --seeds 1 --epochs 1``.
Runs made apart (other tools, another day) join one table: ``--seeds 0 --records a.log
--records b.log`` reads their stdout and only summarises.
Needs gensim (dev extra), the C tool (``bash scripts/build_word2vec_c.sh``) and ``fasttext``
(Debian package); a missing binary skips its tool with a note.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from sgjax.evaluate import evaluate_word_analogies, evaluate_word_pairs
from sgjax.vectors import read_word2vec

MODELS = ("sg-ns", "cbow-ns", "sg-hs", "cbow-hs")
TOOLS = ("sgjax", "gensim2", "gensim1", "c", "fasttext")
RESTRICT_VOCAB = 30000
THREADS = 2
GENSIM = (
    "import json,sys,time\nfrom gensim.models import Word2Vec\nk=json.loads(sys.argv[1])\n"
    "t=time.perf_counter();m=Word2Vec(corpus_file=sys.argv[2],**k)\n"
    "print(json.dumps({'train_s':time.perf_counter()-t}))\n"
    "m.wv.save_word2vec_format(sys.argv[3],binary=True)"
)


def settings(model: str) -> dict[str, Any]:
    """word2vec.c's settings of a model name: sg, hs, negative, alpha."""
    sg, hs = model.startswith("sg-"), model.endswith("-hs")
    return {"sg": sg, "hs": hs, "negative": 0 if hs else 5, "alpha": 0.025 if sg else 0.05}


def parse_corpus(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--corpus wants NAME=PATH, not {spec!r}")
    return name, path


#: The short names of output layers in model names (``sg-ns``); others are the layer's own.
OUTPUTS = {"ns": "negative", "hs": "hierarchical", "sampled": "sampled_softmax"}


def model_choice(model: str) -> tuple[str, str]:
    """``(model.architecture, model.output)`` of a model name: ``sg-ns`` -> ``(skipgram,
    negative)``, ``cbow-softmax`` -> ``(cbow, softmax)``."""
    arch, output = model.split("-", 1)
    return {"sg": "skipgram", "cbow": "cbow"}[arch], OUTPUTS.get(output, output)


def _user_command() -> list[str]:
    """The command a user runs: the ``sgjax`` script of this interpreter's environment (as
    ``pip install`` made it, next to the interpreter), else the module."""
    if sys.executable:
        script = Path(sys.executable).with_name("sgjax")
        if script.is_file():
            return [str(script)]
    return [sys.executable or "python3", "-m", "sgjax.cli"]


SGJAX = _user_command()


def sgjax_cmd(
    model: str, corpus: str, seed: int, epochs: int, out: str, extra: list[str]
) -> list[str]:
    """``sgjax train`` from the defaults plus the model choice (and ``extra`` overrides)."""
    arch, output = model_choice(model)
    sets = [f"model.architecture={arch}", f"model.output={output}", f"data.corpus={corpus}"]
    sets += [f"train.seed={seed}", f"train.epochs={epochs}", *extra]
    setting = [a for k in sets for a in ("--set", k)]
    return [*SGJAX, "train", *setting, "--quiet", "--out", out]


def gensim_kwargs(model: str, seed: int, epochs: int, workers: int) -> dict[str, Any]:
    s = settings(model)
    fixed = dict(vector_size=100, window=5, min_count=5, sample=1e-3, cbow_mean=1, epochs=epochs)
    chosen = dict(sg=int(s["sg"]), hs=int(s["hs"]), negative=s["negative"], alpha=s["alpha"])
    return fixed | chosen | dict(seed=seed + 1, workers=workers)  # gensim wants seed > 0


def gensim_cmd(model: str, text: str, seed: int, epochs: int, workers: int, out: str) -> list[str]:
    kw = json.dumps(gensim_kwargs(model, seed, epochs, workers))
    return [sys.executable, "-c", GENSIM, kw, text, out]


def c_cmd(binary: str, model: str, text: str, epochs: int, out: str) -> list[str]:
    s = settings(model)
    flags = (
        f"-binary 1 -cbow {int(not s['sg'])} -size 100 -window 5 -negative {s['negative']} "
        f"-hs {int(s['hs'])} -sample 1e-3 -min-count 5 -alpha {s['alpha']} -iter {epochs} "
        f"-threads {THREADS}"
    )
    return [binary, "-train", text, "-output", out, *flags.split()]


def fasttext_cmd(binary: str, model: str, text: str, seed: int, epochs: int, out: str) -> list[str]:
    s = settings(model)
    flags = (
        f"-dim 100 -ws 5 -epoch {epochs} -minCount 5 -neg {s['negative']} "
        f"-loss {'hs' if s['hs'] else 'ns'} -t 1e-3 -lr {s['alpha']} -minn 0 -maxn 0 -bucket 0 "
        f"-thread {THREADS} -seed {seed} -verbose 0"
    )
    cmd = "skipgram" if s["sg"] else "cbow"
    return [binary, cmd, "-input", text, "-output", out, *flags.split()]


def command(
    tool: str, model: str, corpus: tuple[str, str], seed: int, tmp: str, args: argparse.Namespace
) -> tuple[list[str], str]:
    """The command line of one run and the vectors file it writes."""
    given, text = corpus
    e, out = args.epochs, os.path.join(tmp, "v")
    if tool == "sgjax":
        cmd = sgjax_cmd(model, given, seed, e, out, args.overrides)
        return cmd, os.path.join(out, "vectors.bin")
    if tool == "fasttext":
        return fasttext_cmd(args.fasttext_binary, model, text, seed, e, out), out + ".vec"
    if tool == "c":
        return c_cmd(args.c_binary, model, text, e, out), out
    return gensim_cmd(model, text, seed, e, int(tool[-1]), out), out


def scores(path: str) -> dict[str, Any]:
    kv = read_word2vec(path, unicode_errors="replace", duplicates="first")
    a = evaluate_word_analogies(kv, restrict_vocab=RESTRICT_VOCAB)
    s = evaluate_word_pairs(kv, restrict_vocab=RESTRICT_VOCAB)
    return {
        "analogy": a.score,
        "analogy_evaluated": a.total.evaluated,
        "wordsim_spearman": s.spearman,
        "vocab_size": len(kv),
    }


def run_one(cmd: list[str], vectors: str) -> dict[str, Any]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    rec: dict[str, Any] = {"wall_s": time.perf_counter() - t}
    if p.returncode != 0 or not os.path.exists(vectors):
        return {**rec, "error": f"exit {p.returncode}: {(p.stderr or p.stdout)[-2000:]}"}
    if cmd[1:2] == ["-c"]:  # gensim prints the time of its Word2Vec call
        rec["train_s"] = json.loads(p.stdout.splitlines()[0])["train_s"]
    return {**rec, **scores(vectors)}


def spread(xs: list[float]) -> dict[str, float]:
    return {"median": median(xs), "min": min(xs), "max": max(xs)}


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per corpus x model x tool the spread over seeds; per corpus x model the bars."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        if "analogy" in r:
            g = results.setdefault(r["corpus"], {}).setdefault(r["model"], {})
            g.setdefault(r["tool"], []).append(r)
    for models in results.values():
        for tools in models.values():
            for tool, rs in tools.items():
                tools[tool] = {
                    "seeds": len(rs),
                    "analogy": spread([r["analogy"] for r in rs]),
                    "wordsim_spearman": spread([r["wordsim_spearman"] for r in rs]),
                    "wall_s_median": median(r["wall_s"] for r in rs),
                }
    bars = {c: {m: bar(t) for m, t in ms.items()} for c, ms in results.items()}
    return {"results": results, "bars": bars}


def bar(tools: dict[str, Any]) -> dict[str, Any]:
    """sgjax - gensim2 and sgjax - c on the medians, and the bars (None: a tool is missing)."""

    def med(tool: str, key: str) -> float | None:
        return tools[tool][key]["median"] if tool in tools else None

    out: dict[str, Any] = {}
    a, s = med("sgjax", "analogy"), med("sgjax", "wordsim_spearman")
    for ref in ("gensim2", "c"):
        ra, rs = med(ref, "analogy"), med(ref, "wordsim_spearman")
        have = None not in (a, s, ra, rs)
        out[f"analogy_minus_{ref}"] = a - ra if have else None
        out[f"spearman_minus_{ref}"] = s - rs if have else None
    da, ds = out["analogy_minus_gensim2"], out["spearman_minus_gensim2"]
    out["analogy_ok_gensim2"] = None if da is None else da >= -0.002
    out["spearman_ok_gensim2"] = None if ds is None else ds >= -0.01
    dc = out["analogy_minus_c"], out["spearman_minus_c"]
    out["both_ge_c"] = None if None in dc else dc[0] >= 0 and dc[1] >= 0
    return out


def verdict(b: dict[str, Any]) -> str:
    """The bars of one cell in words: "met", or which fail and by how much."""
    checks = [
        ("analogy_ok_gensim2", "analogy_minus_gensim2", "analogy vs gensim2"),
        ("spearman_ok_gensim2", "spearman_minus_gensim2", "Spearman vs gensim2"),
    ]
    fails = [f"{name} {b[d]:+.4f}" for ok, d, name in checks if b[ok] is False]
    if b["both_ge_c"] is False:
        fails += [
            f"{name} vs c {b[d]:+.4f}"
            for d, name in (("analogy_minus_c", "analogy"), ("spearman_minus_c", "Spearman"))
            if b[d] < 0
        ]
    if fails:
        return "missed: " + ", ".join(fails)
    return "met" if None not in (b["analogy_ok_gensim2"], b["both_ge_c"]) else "n/a"


def markdown(summary: dict[str, Any], tools: list[str]) -> str:
    lines = [
        "| corpus | model | " + " | ".join(tools) + " | bars |",
        "| --- | --- |" + " ---: |" * len(tools) + " --- |",
    ]
    for corpus, models in summary["results"].items():
        for model, res in models.items():
            cells = [
                f"{res[t]['analogy']['median']:.4f} / {res[t]['wordsim_spearman']['median']:.3f}"
                if t in res
                else "n/a"
                for t in tools
            ]
            bars = verdict(summary["bars"][corpus][model])
            lines.append(f"| {corpus} | {model} | " + " | ".join(cells) + f" | {bars} |")
    return "\n".join(lines) + (
        "\n\nEach cell: median analogy accuracy / WordSim-353 Spearman over the seeds. Bars: "
        "analogy >= gensim2 - 0.002, Spearman >= gensim2 - 0.01, both >= c.\n"
    )


def prepare(name: str, path: str, tmp: str, sort: bool) -> list[tuple[str, str, str]]:
    """(name, path sgjax reads, plain text for the anchors), plus the sorted copy."""
    text = path
    if path.endswith(".xz"):  # gensim's corpus_file, the C tool and fastText read plain text
        text = os.path.join(tmp, f"{name}.txt")
        with lzma.open(path, "rb") as f, open(text, "wb") as g:
            shutil.copyfileobj(f, g, 1 << 24)
    out = [(name, path, text)]
    if sort:
        srt = os.path.join(tmp, f"{name}-sorted.txt")
        with open(srt, "wb") as g:
            subprocess.run(["sort", text], stdout=g, check=True, env={**os.environ, "LC_ALL": "C"})
        out.append((f"{name}-sorted", srt, srt))
    return out


def earlier_records(path: str) -> list[dict[str, Any]]:
    """The run records in an earlier run's stdout (the lines of one JSON object per run)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if {"corpus", "model", "tool", "seed"} <= rec.keys():
                out.append(rec)
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--corpus",
        type=parse_corpus,
        action="append",
        metavar="NAME=PATH",
        help="text file (.xz ok), repeatable; default realtext-v1 (shipped)",
    )
    ap.add_argument("--sorted", action="store_true", help="also each corpus with sorted lines")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="K=V",
        help="extra sgjax override (repeatable; sgjax only)",
    )
    bench = os.path.join(tempfile.gettempdir(), "sgjax-bench", "word2vec")
    ap.add_argument("--c-binary", default=bench, help="word2vec.c (default: %(default)s)")
    ap.add_argument("--fasttext-binary", default=shutil.which("fasttext") or "/usr/bin/fasttext")
    ap.add_argument(
        "--records",
        action="append",
        default=[],
        metavar="FILE",
        help="stdout of an earlier run (JSON lines): its runs join the summary (repeatable)",
    )
    ap.add_argument("--json", help="write all records and the summary here")
    ap.add_argument("--markdown", help="write the Markdown table here")
    return ap


def main(argv: list[str] | None = None) -> None:
    from sgjax.experiment import default_corpus  # imports JAX: not needed by the helpers

    args = build_parser().parse_args(argv)
    tools, notes = [], {}
    for t in dict.fromkeys(args.tools):
        binary = {"c": args.c_binary, "fasttext": args.fasttext_binary}.get(t)
        if binary and not os.access(binary, os.X_OK):
            hint = " (bash scripts/build_word2vec_c.sh)" if t == "c" else ""
            notes[t] = f"skipped: no executable {binary}{hint}"
            print(json.dumps({"tool": t, "note": notes[t]}), flush=True)
        else:
            tools.append(t)
    if not tools:
        sys.exit("compare_quality: no tool left to run")
    records = [r for f in args.records for r in earlier_records(f)]
    k = 0
    with tempfile.TemporaryDirectory(prefix="compare_quality-") as tmp:
        corpora = [
            c
            for n, p in args.corpus or [("realtext-v1", default_corpus())]
            for c in (prepare(n, p, tmp, args.sorted) if args.seeds else [])
        ]
        for name, given, text in corpora:
            for seed in range(args.seeds):
                for model in args.models:
                    for tool in tools[k % len(tools) :] + tools[: k % len(tools)]:
                        run_dir = tempfile.mkdtemp(dir=tmp)
                        cmd, vectors = command(tool, model, (given, text), seed, run_dir, args)
                        rec = {"corpus": name, "model": model, "tool": tool, "seed": seed}
                        if tool == "c":
                            rec["seed_note"] = "repetition index (word2vec.c has no seed)"
                        rec.update(run_one(cmd, vectors), cmd=shlex.join(cmd))
                        shutil.rmtree(run_dir, ignore_errors=True)
                        records.append(rec)
                        print(json.dumps(rec), flush=True)
                    k += 1
    tools = [t for t in TOOLS if t in tools or any(r["tool"] == t for r in records)]
    summary = {
        "summary": True,
        "errors": sum("error" in r for r in records),
        "seeds": args.seeds,
        "epochs": args.epochs,
        "tools": tools,
        "notes": notes,
        "overrides": args.overrides,
        "restrict_vocab": RESTRICT_VOCAB,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        **summarize(records),
    }
    emit(summary, markdown(summary, tools), records, args)


def emit(summary: dict, table: str, records: list, args: argparse.Namespace) -> None:
    """Print the summary JSON object and the table; write them to ``--json``/``--markdown``."""
    print(json.dumps(summary), flush=True)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"records": records, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
