"""Callbacks, the in-memory history and a custom loop through public names only."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from test_train import tiny_cfg, write_toy_corpus

from sgjax.callbacks import Callback, Recorder
from sgjax.experiment import build, train
from sgjax.train import train_step_jit


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


def test_history_and_callbacks_without_a_run_directory(corpus):
    """The issue's reproduction: with out_dir=None nothing kept the loss."""
    seen: dict[str, list] = {"log": [], "epoch": [], "end": []}
    cb = Callback(
        on_log=lambda state, rec: seen["log"].append((int(state.step), rec)),
        on_epoch_end=lambda state, rec: seen["epoch"].append((int(state.epoch), rec)),
        on_train_end=lambda state, rec: seen["end"].append((int(state.step), rec)),
    )
    result = train(
        tiny_cfg(corpus, "train.log_every_steps=8"), None, progress=False, callbacks=[cb]
    )
    events = [r["event"] for r in result.history]
    assert events[-1] == "end" and events.count("epoch") == 2 and events.count("log") >= 4
    assert [r for _, r in seen["log"]] == [r for r in result.history if r["event"] == "log"]
    assert [e for e, _ in seen["epoch"]] == [1, 2]
    assert seen["end"][0][0] == int(result.state.step) == result.history[-1]["step"]
    logs = [r for r in result.history if r["event"] == "log"]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in logs)
    assert [r["step"] for r in logs] == sorted(r["step"] for r in logs)
    times = [r["time"] for r in result.history]
    assert times == sorted(times) and times[0] > 1.6e9  # wall-clock seconds


def test_history_equals_metrics_jsonl(corpus, tmp_path):
    result = train(tiny_cfg(corpus, "train.log_every_steps=8"), tmp_path / "run", progress=False)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == json.loads(json.dumps(result.history))


def test_a_callback_without_hooks_is_refused():
    with pytest.raises(TypeError, match="on_log"):
        Recorder(None, [object()])


def test_custom_loop_with_public_names_equals_fit(corpus):
    """A custom loop needed sgjax.experiment._batches, a hand division of m["loss"] by the
    terms and advancing state.epoch by hand."""
    cfg = tiny_cfg(corpus)
    run = build(cfg)
    state, losses = run.state, []
    for epoch in range(cfg.train.epochs):
        for batch in run.calls(epoch):
            state, m = train_step_jit(state, batch, run.tables, run.spec)
            assert float(m["loss_mean"]) == pytest.approx(float(m["loss"]) / float(m["terms"]))
            losses.append(float(m["loss_mean"]))
        state = state.next_epoch()
    reference = train(cfg, None, progress=False)
    assert int(state.epoch) == cfg.train.epochs == int(reference.state.epoch)
    for k in ("W", "W_out"):
        np.testing.assert_array_equal(
            np.asarray(jax.device_get(state.params[k])), np.asarray(reference.state.params[k])
        )
    assert losses[-1] < losses[0]
    assert sum(1 for _ in run.batches(0)) == run.total_steps // cfg.train.epochs


def test_a_run_writes_tensorboard_events_that_read_back(corpus, tmp_path):
    pytest.importorskip("tensorboardX")
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    cfg = tiny_cfg(corpus, "train.log_every_steps=8", "train.log_to=[jsonl,tensorboard]")
    result = train(cfg, out, progress=False)
    ea = ea_mod.EventAccumulator(str(out / "tensorboard"))
    ea.Reload()
    logs = [r for r in result.history if r["event"] == "log"]
    got = [(e.step, e.value) for e in ea.Scalars("log/loss")]
    assert got == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in logs]
    assert {"epoch/loss", "epoch/words_per_s", "end/phases_s/train"} <= set(ea.Tags()["scalars"])


def test_progress_eta_excludes_the_first_call_and_lr_keeps_three_digits(monkeypatch):
    """The first piped progress line counted compile time into its ETA ("eta 210s" for a
    15 s run), and stderr rounded lr to 0.0."""
    from sgjax import progress as progress_mod

    clock = iter([0.0, 20.0, 21.0])  # start; the first call (compiling) ends at 20 s; then 1 s
    monkeypatch.setattr(progress_mod.time, "perf_counter", lambda: next(clock))
    bar = progress_mod.Progress(total_words=1000, initial=0, enabled=False)
    bar(100, {"loss": 2.0, "lr": 2.5e-4})  # the first call: 100 words in 20 s
    bar.done += 100  # a second call: 100 words in 1 s
    line = bar.line({"loss": 2.0, "lr": 2.5e-4}, 21.0)
    assert "100 words/s" in line and "eta 8s" in line and "lr 0.00025" in line
    assert progress_mod.sig(2.5e-4, 4) == 2.5e-4 and progress_mod.sig(0.0123456) == 0.0123
