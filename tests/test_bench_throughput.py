"""scripts/bench_throughput.py: end to end on a tiny corpus (gensim needed), the word2vec.c
path against a stand-in binary, and the Markdown tables of every section."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gensim")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_throughput.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_throughput", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _tiny_corpus(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    lines = [" ".join(rng.choice(words, 30)) for _ in range(300)]
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(lines) + "\n")
    return corpus


# A stand-in for the word2vec binary: checks the C tool's flags and writes random vectors
# for the words of -train in its binary format, as the real tool does.
FAKE_C = """#!{python}
import sys
import numpy as np
from sgjax.vectors import WordVectors, write_word2vec
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
expected = {expected!r}
assert all(a[k] == v for k, v in expected.items()), (a, expected)
words = sorted(set(open(a["-train"]).read().split()))
W = np.random.default_rng(0).normal(size=(len(words), int(a["-size"])))
write_word2vec(WordVectors.from_params(words, W), a["-output"], binary=a["-binary"] == "1")
"""


def test_bench_throughput_tiny(tmp_path, capsys):
    bench = _bench()
    corpus = _tiny_corpus(tmp_path)
    fake = tmp_path / "word2vec"
    expected = {"-cbow": "0", "-hs": "0", "-size": "8", "-window": "5", "-negative": "5"}
    expected |= {"-sample": "0.0", "-min-count": "5", "-iter": "1", "-threads": "2"}
    fake.write_text(FAKE_C.format(python=sys.executable, expected=expected))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    argv = ["--corpus", str(corpus), "--epochs", "1", "--work-dir", str(tmp_path / "work")]
    argv += ["--set", "model.dim=8", "--set", "train.batch_size=60", "--set", "data.sample=0"]
    argv += ["--set", "train.steps_per_call=2", "--repeats", "2", "--c-binary", str(fake)]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (res,) = report["results"]
    assert res["corpus"] == "tiny.txt"
    for tool in ("sgjax", "gensim"):
        assert len(res[tool]["runs"]) == 2
        assert res[tool]["words_per_s"] > 0
        assert res[tool]["corpus_tokens"] == 9000
        assert res[tool]["vocab_size"] == 60
    assert len(res["word2vec_c"]["runs"]) == 1  # --c-repeats 1: the first repeat only
    assert res["word2vec_c"]["vocab_size"] == 60 and res["word2vec_c"]["words_per_s"] > 0
    assert res["ratio_sgjax_over_gensim"] == pytest.approx(
        res["sgjax"]["words_per_s"] / res["gensim"]["words_per_s"], rel=1e-2, abs=1e-3
    )
    for run in res["sgjax"]["runs"]:  # the first call is part of the run, and slower
        assert 0 < run["first_call_s"] < run["train_s"]
        assert run["steady_words_per_s"] > 0


def test_markdown_tables_of_every_section():
    bench = _bench()
    run = {"words_per_s": 1000, "train_s": 2.0, "analogy": 0.1, "wordsim_spearman": 0.4}
    tool = {**run, "runs": [run, {**run, "words_per_s": 900}]}
    report = {
        "results": [{"corpus": "c", "sgjax": tool, "gensim": tool, "ratio_sgjax_over_gensim": 1}],
        "scaling": [
            {
                "vary": "dim",
                "value": 50,
                "corpus_tokens": 3000,
                "vocab_size": 20,
                "gensim_s": 1.0,
                "sgjax_s": 2.0,
                "sgjax_first_call_s": 1.5,
                "gensim_words_per_s": 3000,
                "sgjax_words_per_s": 1500,
                "ratio": 0.5,
                "sgjax_steady_words_per_s": None,  # one call in all
                "steady_ratio": None,
            }
        ],
        "batch_sweep": {
            "gensim": run,
            "rows": [
                {"batch_size": 320, "row_update_cap": 0, **run, "analogy_minus_gensim": -0.001},
                {"batch_size": 20480, "row_update_cap": 0, "diverged": "non-finite loss"},
            ],
        },
    }
    lines = bench.markdown(report).splitlines()
    assert "| c | sgjax | 1,000 | 2.0 | 1 | 0.1 | 0.4 | 1,000, 900 |" in lines
    assert "| dim | 50 | 3,000 | 20 | 1.0 | 2.0 (1.5) | 3,000 | 1,500 | 0.5 | 0 | None |" in lines
    assert "| 320 | 0 | 1,000 | 0.1 | -0.001 | 0.4 |" in lines
    assert "| 20,480 | 0 | | diverged (non-finite loss) | | |" in lines
    # every table row has its header's number of columns
    tables = "\n".join(lines).split("\n\n")
    for table in tables:
        rows = [r for r in table.splitlines() if r.startswith("|")]
        assert len({r.count("|") for r in rows[:2]}) == 1
        for r in rows[2:]:
            assert r.count("|") == rows[0].count("|"), r
