"""`sgjax export`: a run's vectors from its newest checkpoint, in the word2vec formats.

A tiny run (a toy corpus of a few thousand tokens, two epochs) is trained once per module;
an interrupted run is made by sending SIGINT during training, as Ctrl-C would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from sgjax import checkpoint
from sgjax.checkpoint import load_run_state
from sgjax.cli import main as cli_main
from sgjax.commands.export import select_vectors
from sgjax.config import load_config
from sgjax.experiment import build, train
from sgjax.signals import Interrupted
from sgjax.vectors import read_word2vec

CAPITALS = [("athens", "greece"), ("berlin", "germany"), ("paris", "france"), ("rome", "italy")]
SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
FILLER = "the a of in tiger cat book paper computer keyboard car plane".split()


def write_corpus(path, lines: int = 300, seed: int = 0) -> str:
    """~3,000 tokens: 'CITY is the capital of COUNTRY' plus filler (WordSim-353 words)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(lines):
        city, country = CAPITALS[rng.integers(len(CAPITALS))]
        out.append(" ".join([city, "is", "the", "capital", "of", country, *rng.choice(FILLER, 3)]))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return str(path)


def tiny_cfg(corpus: str, *overrides: str):
    return load_config(
        SMOKE,
        [
            f"data.corpus={corpus}",
            "data.min_count=1",
            "data.sample=0",
            "train.epochs=2",
            "train.batch_size=64",
            "train.steps_per_call=4",
            "train.log_every_steps=1",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "toy.txt")


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "finished"
    result = train(tiny_cfg(corpus), out, progress=False)
    return out, result


def export(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli_main(["export", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# --------------------------------------------------------------------------------------------
# Formats: what gensim reads equals the checkpoint's W.


@pytest.mark.parametrize("fmt", ["text", "binary"])
def test_export_loads_in_gensim_and_equals_the_checkpoint(finished, tmp_path, capsys, fmt):
    keyedvectors = pytest.importorskip("gensim.models.keyedvectors")
    run, result = finished
    path = tmp_path / f"vectors.{fmt}"
    rc, out, err = export(capsys, "--run", str(run), "--format", fmt, "--out", str(path))
    assert rc == 0, err
    assert out.strip() == str(path)
    kv = keyedvectors.KeyedVectors.load_word2vec_format(str(path), binary=fmt == "binary")
    W = np.asarray(result.state.params["W"], np.float32)
    assert list(kv.index_to_key) == list(result.vectors.words)
    assert kv.vectors.shape == W.shape
    np.testing.assert_array_equal(kv.vectors, W)  # %.9g text restores float32 exactly


def test_default_output_is_the_runs_vectors_file(finished, capsys):
    run, _ = finished
    rc, out, _ = export(capsys, "--run", str(run))
    assert rc == 0
    assert out.strip() == str(run / "vectors.input.bin")
    assert (run / "vectors.input.bin").read_bytes() == (run / "vectors.bin").read_bytes()


@pytest.mark.parametrize("which", ["input", "output", "both"])
def test_which_vectors(finished, tmp_path, capsys, which):
    run, result = finished
    path = tmp_path / f"{which}.txt"
    rc, _, err = export(
        capsys, "--run", str(run), "--which", which, "--format", "text", "--out", str(path)
    )
    assert rc == 0, err
    W = np.asarray(result.state.params["W"], np.float32)
    W_out = np.asarray(result.state.params["W_out"], np.float32)
    assert np.abs(W_out).max() > 0  # trained: the output vectors are not the zeros of init
    want = {"input": W, "output": W_out, "both": W + W_out}[which]
    np.testing.assert_array_equal(read_word2vec(path, binary=False).matrix, want)


def test_hierarchical_softmax_has_no_output_vectors_of_words():
    words = ["a", "b", "c"]
    params = {"W": np.ones((3, 4), np.float32), "W_out": np.ones((2, 4), np.float32)}
    assert select_vectors(words, params, "input").matrix.shape == (3, 4)
    for which in ("output", "both"):
        with pytest.raises(ValueError, match="inner nodes of the Huffman tree"):
            select_vectors(words, params, which)


def test_gzip_output(finished, tmp_path, capsys):
    run, result = finished
    path = tmp_path / "v.txt.gz"
    assert export(capsys, "--run", str(run), "--format", "text", "--out", str(path))[0] == 0
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_word2vec(path).matrix, result.vectors.matrix)


def test_zero_padding_rows_of_a_sharded_checkpoint_are_dropped(finished, tmp_path):
    run, result = finished
    padded = tmp_path / "padded"
    padded.mkdir()
    for name in ("vocab.txt", "config.yaml"):
        shutil.copy(run / name, padded / name)
    W, W_out = (np.asarray(result.state.params[k]) for k in ("W", "W_out"))

    def pad(x):  # sgjax.sharding stores tables with zero rows up to a multiple of the mesh
        return np.pad(x, [(0, 3), (0, 0)])

    checkpoint.save(padded, {"params": {"W": pad(W), "W_out": pad(W_out)}}, {"step": 7})
    _, params, meta = load_run_state(padded)
    np.testing.assert_array_equal(params["W"], W)
    np.testing.assert_array_equal(params["W_out"], W_out)
    assert meta["step"] == 7
    # a non-zero row past the vocabulary: the vocabulary is not this checkpoint's
    bad = pad(W_out)
    bad[-1, 0] = 1.0
    checkpoint.save(padded, {"params": {"W": pad(W), "W_out": bad}}, {"step": 8})
    with pytest.raises(ValueError, match="W_out of shape .* does not match"):
        load_run_state(padded)


# --------------------------------------------------------------------------------------------
# An interrupted run: a checkpoint but no vectors.bin.


def test_export_of_an_interrupted_run(corpus, tmp_path, capsys):
    from sgjax.callbacks import Callback

    cfg = tiny_cfg(corpus, "train.epochs=3")
    run = tmp_path / "cut"
    # Ctrl-C after the first metrics line
    ctrl_c = Callback(on_log=lambda state, record: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(Interrupted):
        train(cfg, run, progress=False, callbacks=[ctrl_c])
    assert not (run / "vectors.bin").exists()
    meta = json.loads((checkpoint.latest(run) / "meta.json").read_text())
    assert meta["epoch"] == 0 and meta["batch_in_epoch"] > 0  # stopped inside epoch 1

    path = tmp_path / "cut.bin"
    rc, _, err = export(capsys, "--run", str(run), "--out", str(path))
    assert rc == 0, err
    assert f"step {meta['step']}" in err
    # the reference: a full restore of the TrainState, rebuilt from the run's config
    full = build(load_config(run / "config.yaml"), run)
    state, _ = checkpoint.restore(checkpoint.latest(run), full.state)
    W = np.asarray(state.params["W"])
    np.testing.assert_array_equal(read_word2vec(path, binary=True).matrix, W)
    # training moved W away from its initialisation before the interrupt
    assert not np.array_equal(W, np.asarray(full.state.params["W"]))


# --------------------------------------------------------------------------------------------
# Errors.


def test_missing_run_directory(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    rc, out, err = export(capsys, "--run", str(missing))
    assert rc == 2 and out == ""
    assert str(missing) in err and "no such run directory" in err


def test_directory_without_checkpoint(tmp_path, capsys):
    rc, _, err = export(capsys, "--run", str(tmp_path))
    assert rc == 2
    assert str(tmp_path / "checkpoints") in err and "no checkpoint" in err


def test_missing_vocabulary(finished, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(finished[0], run)
    (run / "vocab.txt").unlink()
    rc, _, err = export(capsys, "--run", str(run))
    assert rc == 2 and str(run / "vocab.txt") in err
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        load_run_state(run)


def test_vocabulary_that_does_not_match_the_checkpoint(finished, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(finished[0], run)
    lines = (run / "vocab.txt").read_text().splitlines()
    (run / "vocab.txt").write_text("\n".join(lines[:-1]) + "\n")
    rc, _, err = export(capsys, "--run", str(run))
    assert rc == 2 and "does not match" in err and str(run / "vocab.txt") in err


def test_hierarchical_output_through_the_cli(finished, tmp_path, capsys, monkeypatch):
    run, _ = finished

    def hs_state(run_dir):  # the run as hierarchical softmax would store it: V-1 rows
        vocab, params, meta = load_run_state(run_dir)
        return vocab, {**params, "W_out": params["W_out"][:-1]}, meta

    monkeypatch.setattr("sgjax.checkpoint.load_run_state", hs_state)
    rc, _, err = export(
        capsys, "--run", str(run), "--which", "output", "--out", str(tmp_path / "x")
    )
    assert rc == 2 and "hierarchical softmax" in err
    assert not (tmp_path / "x").exists()


def test_unwritable_output(finished, tmp_path, capsys):
    target = tmp_path / "no-such-dir" / "v.bin"
    rc, _, err = export(capsys, "--run", str(finished[0]), "--out", str(target))
    assert rc == 2 and str(target) in err and len(err.strip().splitlines()) == 1
