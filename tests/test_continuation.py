"""Continuing runs (more epochs, with the schedule rule of sgjax.continuation), pretrained
input vectors (model.init_from) and a fixed vocabulary (data.vocab)."""

from __future__ import annotations

import json

import numpy as np
import optax
import pytest
from test_train import params_of, tiny_cfg, write_toy_corpus

from sgjax.cli import main as cli_main
from sgjax.config import load_config
from sgjax.continuation import continued_schedule, stretch
from sgjax.experiment import build, train
from sgjax.rundir import RunDirError
from sgjax.vectors import read_word2vec
from sgjax.vocab import load_vocab

SCHEDULES = {
    "linear": optax.linear_schedule(0.025, 0.0001, 100),
    "cosine": optax.cosine_decay_schedule(0.025, 100, alpha=0.01),
    "constant": optax.constant_schedule(0.01),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("at", [0, 40, 100])
def test_stretch_is_continuous_and_ends_where_the_schedule_ends(name, at):
    s = SCHEDULES[name]
    longer = stretch(s, at, 100, 250)
    for t in range(0, at):
        assert float(longer(t)) == pytest.approx(float(s(t)))
    assert float(longer(at)) == pytest.approx(float(s(at)))  # no jump
    assert float(longer(250)) == pytest.approx(float(s(100)))  # the same end
    values = [float(longer(t)) for t in range(at, 251)]
    if name == "linear":  # still monotone, decaying over the longer run
        assert all(a >= b - 1e-9 for a, b in zip(values, values[1:], strict=False))


def test_continued_schedule_composes_continuations():
    def build_(n):
        return optax.linear_schedule(1.0, 0.0, n)

    s = continued_schedule(build_, 10, 5, [[20, 3], [35, 4]])  # 3 -> 4 at 20, 4 -> 5 at 35
    t3 = build_(30)
    assert float(s(19)) == pytest.approx(float(t3(19)))
    at35 = float(stretch(t3, 20, 30, 40)(35))
    assert float(s(35)) == pytest.approx(at35) and float(s(50)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at <= total < new_total"):
        stretch(t3, 31, 30, 40)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


def lrs(run_dir) -> list[tuple[int, float]]:
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["lr"]) for r in recs if r["event"] == "log"]


def test_more_epochs_continue_without_an_lr_jump_and_reproduce(corpus, tmp_path):
    """Adding epochs meant editing config.yaml by hand, and the lr jumped from ~0 to ~0.005."""
    run = tmp_path / "run"
    first = train(tiny_cfg(corpus, "train.log_every_steps=8"), run, progress=False)
    t0 = int(first.state.step)
    assert (
        cli_main(["train", "--quiet", "--resume", "--out", str(run), "--set", "train.epochs=4"])
        == 0
    )
    cfg = load_config(run / "config.yaml")
    assert cfg.train.epochs == 4 and cfg.train.extended == [[t0, 2]]
    steps = lrs(run)
    before = [lr for s, lr in steps if s <= t0]
    after = [lr for s, lr in steps if s > t0]
    assert after and max(after) <= before[-1] + 1e-9  # no jump up at the continuation
    last = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["event"] == "end" and last["step"] > 1.9 * t0  # about twice the steps
    # config.yaml reproduces the continued run's schedule, so a fresh run of it equals it
    again = train(cfg, tmp_path / "again", progress=False)
    np.testing.assert_array_equal(
        read_word2vec(run / "vectors.bin").matrix, np.asarray(again.vectors.matrix)
    )


@pytest.mark.parametrize(
    "override,needle",
    [("model.dim=9", "model.dim (8 -> 9)"), ("train.epochs=1", "train.epochs (2 -> fewer)")],
)
def test_resume_refuses_other_config_changes(corpus, tmp_path, capsys, override, needle):
    """train(cfg, resume=True) silently ignored cfg in favour of the saved config."""
    run = tmp_path / "run"
    train(tiny_cfg(corpus), run, progress=False)
    with pytest.raises(RunDirError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        train(tiny_cfg(corpus, override), run, resume=True, progress=False)
    assert cli_main(["train", "--quiet", "--resume", "--out", str(run), "--set", override]) == 2
    assert needle in capsys.readouterr().err


def test_init_from_starts_the_input_vectors_from_a_file(corpus, tmp_path):
    first = train(tiny_cfg(corpus), tmp_path / "a", progress=False)
    cfg = tiny_cfg(corpus, f"model.init_from={tmp_path / 'a' / 'vectors.bin'}", "train.seed=3")
    run = build(cfg)
    np.testing.assert_array_equal(np.asarray(run.state.params["W"]), first.vectors.matrix)
    fresh = build(tiny_cfg(corpus, "train.seed=3"))
    np.testing.assert_array_equal(params_of(run)["W_out"], params_of(fresh)["W_out"])
    with pytest.raises(ValueError, match="dimension 8, model.dim is 6"):
        build(tiny_cfg(corpus, f"model.init_from={tmp_path / 'a' / 'vectors.bin'}", "model.dim=6"))


def test_fixed_vocabulary_drops_other_words(corpus, tmp_path):
    (tmp_path / "v.txt").write_text("cat 1\ndog 1\neats 1\nzebra 7\n")
    result = train(
        tiny_cfg(corpus, f"data.vocab={tmp_path / 'v.txt'}"), tmp_path / "r", progress=False
    )
    assert set(result.vectors.words) == {"cat", "dog", "eats", "zebra"}
    counted = load_vocab(tmp_path / "r" / "vocab.txt")
    text = open(corpus).read().split()
    assert dict(zip(counted.words, counted.counts.tolist(), strict=True)) == {
        "cat": text.count("cat"),
        "dog": text.count("dog"),
        "eats": text.count("eats"),
        "zebra": 1,  # not in the corpus: count 1, trained only as noise
    }


def test_a_run_longer_than_its_step_estimate_still_continues():
    """Subsampling makes an epoch a few steps longer than seed 0's first (the estimate):
    adding epochs to such a finished run failed with 'at <= total < new_total'."""

    def build_(n):
        return optax.linear_schedule(1.0, 0.1, n)

    s = continued_schedule(build_, 10, 3, [[22, 2]])  # 2 epochs of ~10 steps took 22
    assert float(s(22)) == pytest.approx(0.1) and float(s(30)) == pytest.approx(0.1)


def test_the_same_config_resumes_again_after_a_continuation(corpus, tmp_path):
    """train(cfg4, run, resume=True) a second time refused the run it had continued."""
    run = tmp_path / "run"
    train(tiny_cfg(corpus), run, progress=False)
    cfg4 = tiny_cfg(corpus, "train.epochs=4")
    first = train(cfg4, run, resume=True, progress=False)
    again = train(cfg4, run, resume=True, progress=False)
    assert int(again.state.step) == int(first.state.step) and int(again.state.epoch) == 4


def test_keys_that_may_change_apply_on_resume(corpus, tmp_path):
    """--resume --set data.cache_dir=... was accepted but the saved cache was used."""
    run, cache = tmp_path / "run", tmp_path / "elsewhere"
    train(tiny_cfg(corpus), run, progress=False)
    args = ["train", "--quiet", "--resume", "--out", str(run), "--set", f"data.cache_dir={cache}"]
    assert cli_main([*args, "--set", "train.epochs=3"]) == 0
    assert (cache / "tokens.npy").is_file()
    cfg = load_config(run / "config.yaml")
    assert cfg.data.cache_dir == str(cache) and cfg.train.epochs == 3
