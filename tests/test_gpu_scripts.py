"""The prepared GPU check's scripts, on the CPU: every benchmark row of
scripts/gpu_check.py is a valid config that trains (one row end to end on a tiny corpus),
scripts/gpu_check.sh is valid bash, and bench_pipeline's device-generator timing runs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from test_train import write_toy_corpus

from sgjax.config import load_config

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(SCRIPTS))


def test_every_gpu_row_is_a_valid_config():
    rows = _load("gpu_check").ROWS
    assert len({name for name, _, _ in rows}) == len(rows)
    for name, over, epochs in rows:
        cfg = load_config(None, [*over, f"train.epochs={epochs}"])
        assert cfg.train.epochs == epochs, name


def test_a_gpu_row_trains_on_a_tiny_corpus(tmp_path):
    gc = _load("gpu_check")
    corpus = Path(write_toy_corpus(tmp_path))
    name, over, _ = gc.ROWS[0]
    assert "data.examples=device" in over
    small = [*over, "train.batch_size=64", "data.min_count=1", "data.max_line_tokens=100"]
    cfg = load_config(None, [*small, "train.epochs=1"])
    row = gc.run_sgjax(cfg, corpus, tmp_path, "t")
    assert row["words_per_s"] > 0 and row["corpus_tokens"] > 1000


def test_gpu_check_sh_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPTS / "gpu_check.sh")], check=True)


def test_bench_pipeline_times_the_host_and_device_generators(tmp_path):
    bp = _load("bench_pipeline")
    from sgjax.encode import encode_corpus
    from sgjax.vocab import build_vocab

    corpus = write_toy_corpus(tmp_path)
    vocab = build_vocab([corpus], min_count=1)
    enc = encode_corpus([corpus], vocab, None)
    args = argparse.Namespace(batch_size=64, sample=1e-3, seed=0, window=5, epochs=2)
    dt, examples, batches = bp.time_epoch(enc, vocab, args, 0)  # the host generator's
    assert dt > 0 and batches >= 2 and 64 * (batches - 1) < examples <= 64 * batches
    out = bp.jax_windows(enc, vocab, args, block=512)
    assert out["jax_chunk_tokens"] == 512
    assert out["jax_corpus_tokens_per_s"] > 0 and out["jax_examples_per_s"] > 0
    json.dumps(out)
