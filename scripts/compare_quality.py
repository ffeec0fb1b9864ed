"""Vector quality of sgjax against gensim, trained in the same run on the same corpus.

For each recipe (default: skip-gram NS, CBOW NS and skip-gram HS, word2vec.c's settings:
dim 100, window 5, sample 1e-3, min_count 5, 5 epochs) it trains sgjax from the config file
and gensim 4 with the equivalent arguments, evaluates both with sgjax.evaluate (equal to
gensim's own evaluation to 1e-6, see tests/test_evaluate.py) and prints one JSON object per
recipe, then a summary object as the last line:

    python scripts/compare_quality.py                      # realtext-v1, three recipes
    python scripts/compare_quality.py --recipes sg_ns --epochs 1 --set train.batch_size=512

Needs the dev extra (gensim).
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from sgjax.config import Config, load_config
from sgjax.evaluate import evaluate_word_analogies, evaluate_word_pairs
from sgjax.experiment import default_corpus, train
from sgjax.vectors import WordVectors

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
RECIPES = ("sg_ns", "cbow_ns", "sg_hs")


def gensim_kwargs(cfg: Config, workers: int) -> dict:
    """gensim.models.Word2Vec arguments equivalent to an sgjax config."""
    m, d, o, t = cfg.model, cfg.data, cfg.optimizer, cfg.train
    negative = m.negatives if str(m.output) == "negative" else 0
    return dict(
        vector_size=m.dim,
        window=m.window,
        min_count=d.min_count,
        sg=int(str(m.architecture) == "skipgram"),
        hs=int(str(m.output) == "hierarchical"),
        negative=negative,
        ns_exponent=d.ns_exponent,
        cbow_mean=int(m.cbow_mean),
        sample=d.sample,
        alpha=o.learning_rate,
        min_alpha=o.end_lr,
        epochs=t.epochs,
        seed=t.seed + 1,  # gensim's seed must be > 0 for a reproducible hash seed
        workers=workers,
    )


def scores(vectors: WordVectors, restrict_vocab: int) -> dict:
    a = evaluate_word_analogies(vectors, restrict_vocab=restrict_vocab)
    s = evaluate_word_pairs(vectors, restrict_vocab=restrict_vocab)
    return {
        "analogy": a.score,
        "analogy_evaluated": a.total.evaluated,
        "wordsim_spearman": s.spearman,
    }


def run_gensim(cfg: Config, text_path: str, workers: int) -> dict:
    from gensim.models import Word2Vec

    t = time.perf_counter()
    model = Word2Vec(corpus_file=text_path, **gensim_kwargs(cfg, workers))
    dt = time.perf_counter() - t
    kv = model.wv
    vectors = WordVectors.from_params(list(kv.index_to_key), kv.vectors)
    words = model.corpus_total_words * cfg.train.epochs
    return {
        "vocab_size": len(vectors),
        "train_s": dt,
        "words_per_s": words / dt,
        **scores(vectors, cfg.eval.restrict_vocab),
    }


def run_sgjax(cfg: Config) -> dict:
    t = time.perf_counter()
    result = train(cfg, None, progress=False, evaluate_each_epoch=False)
    dt = time.perf_counter() - t
    return {
        "vocab_size": len(result.vectors),
        "train_s": dt,  # includes vocabulary, encoding and compilation
        **scores(result.vectors, cfg.eval.restrict_vocab),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=None, help="text file (.xz ok); default: realtext-v1")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), help="configs/NAME.yaml")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    ap.add_argument("--workers", type=int, default=2, help="gensim worker threads")
    args = ap.parse_args()

    corpus = args.corpus or default_corpus()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        text = corpus
        if corpus.endswith(".xz"):  # gensim's corpus_file mode reads plain text only
            text = os.path.join(tmp, "corpus.txt")
            with lzma.open(corpus, "rb") as f, open(text, "wb") as g:
                while chunk := f.read(1 << 24):
                    g.write(chunk)
        for name in args.recipes:
            overrides = [f"data.corpus={corpus}", *args.overrides]
            if args.epochs is not None:
                overrides.append(f"train.epochs={args.epochs}")
            cfg = load_config(CONFIGS / f"{name}.yaml", overrides)
            ours = run_sgjax(cfg)
            theirs = run_gensim(cfg, text, args.workers)
            row = {
                "recipe": name,
                "sgjax": ours,
                "gensim": theirs,
                "analogy_diff": ours["analogy"] - theirs["analogy"],
                "spearman_diff": ours["wordsim_spearman"] - theirs["wordsim_spearman"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {
        "corpus": corpus,
        "epochs": args.epochs,
        "overrides": args.overrides,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "within_0.01_analogy": all(
            abs(r["analogy_diff"]) <= 0.01 or r["analogy_diff"] > 0 for r in rows
        ),
        "within_0.03_spearman": all(
            abs(r["spearman_diff"]) <= 0.03 or r["spearman_diff"] > 0 for r in rows
        ),
        "table": [
            [
                r["recipe"],
                r["sgjax"]["analogy"],
                r["gensim"]["analogy"],
                r["sgjax"]["wordsim_spearman"],
                r["gensim"]["wordsim_spearman"],
            ]
            for r in rows
        ],
    }
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
