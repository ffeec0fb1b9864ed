"""scripts/bench_throughput.py runs end to end on a tiny corpus (gensim needed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gensim")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_throughput.py"


@pytest.mark.slow
def test_bench_throughput_tiny(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_throughput", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    lines = [" ".join(rng.choice(words, 30)) for _ in range(300)]
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(lines) + "\n")
    argv = ["--corpus", str(corpus), "--epochs", "1", "--work-dir", str(tmp_path / "work")]
    argv += ["--set", "model.dim=8", "--set", "train.batch_size=60", "--set", "data.sample=0"]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (res,) = report["results"]
    assert res["corpus"] == "tiny.txt"
    for tool in ("sgjax", "gensim"):
        assert res[tool]["words_per_s"] > 0
        assert res[tool]["corpus_tokens"] == 9000
        assert res[tool]["vocab_size"] == 60
    assert res["ratio_sgjax_over_gensim"] == pytest.approx(
        res["sgjax"]["words_per_s"] / res["gensim"]["words_per_s"], rel=1e-2, abs=1e-3
    )
