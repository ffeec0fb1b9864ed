"""Training end to end: the step, the fit loop, checkpoints, resume, interruption, errors.

Everything runs on a tiny generated corpus so that a whole run takes a second or two after
compilation.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgjax import checkpoint
from sgjax.cli import main as cli_main
from sgjax.config import ConfigError, load_config
from sgjax.experiment import _batches, build, train
from sgjax.loop import Hooks, fit, group_batches
from sgjax.rundir import RunDirError
from sgjax.signals import Interrupted
from sgjax.train import NonFiniteLossError, RecompilationError, train_step_jit
from sgjax.vectors import read_word2vec

SUBJECTS = ["cat", "dog", "bird", "fish", "horse", "mouse"]
VERBS = ["eats", "sees", "likes", "chases"]
OBJECTS = ["food", "water", "grass", "seeds", "meat"]


def write_toy_corpus(directory) -> str:
    """~3,000 tokens of a toy grammar, lines of varying length: ``directory/toy.txt``."""
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(300):
        n = int(rng.integers(1, 4))
        parts = []
        for _ in range(n):
            parts += [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
        lines.append(" ".join(parts))
    path = directory / "toy.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


#: The overrides of a tiny run (besides data.corpus), for the API and the CLI's --set.
TINY = (
    "data.min_count=1",
    "data.sample=0",
    "model.dim=8",
    "model.window=2",
    "model.negatives=3",
    "train.epochs=2",
    "train.batch_size=64",
    "train.steps_per_call=8",
    "eval.analogies=false",
    "eval.similarity=false",
)


def tiny_cfg(corpus: str, *overrides: str):
    return load_config(None, [f"data.corpus={corpus}", *TINY, *overrides])


def params_of(result) -> dict:
    return jax.tree.map(np.asarray, result.state.params)


# --------------------------------------------------------------------------------------------
# The two gradient engines train to the same parameters, for every model.

PAPER = ("model.skipgram_input=center", "train.window_buckets=false")
MODELS = [
    ("skipgram", "negative", "paper", PAPER),
    ("skipgram", "negative", "paper", ()),  # the default step (shared rows, buckets)
    # undamped: autodiff's dense gradient has no row entries to damp
    ("skipgram", "hierarchical", "paper", ("train.row_damping=false",)),
    ("skipgram", "softmax", "paper", ()),
    ("cbow", "negative", "paper", ()),  # CBOW's default: batches in corpus order
    ("cbow", "negative", "word2vec", ("train.window_buckets=true",)),
    ("cbow", "hierarchical", "word2vec", ("train.row_damping=false",)),
    ("cbow", "softmax", "paper", ()),
]


@pytest.mark.parametrize("architecture,output,cbow_update,extra", MODELS)
def test_explicit_and_autodiff_train_to_the_same_parameters(
    corpus, architecture, output, cbow_update, extra
):
    jax.config.update("jax_enable_x64", True)
    try:
        runs = {}
        for g in ("explicit", "autodiff"):
            cfg = tiny_cfg(
                corpus,
                f"model.architecture={architecture}",
                f"model.output={output}",
                f"model.cbow_update={cbow_update}",
                f"train.gradients={g}",
                "train.dtype=float64",
                "train.epochs=1",
                *extra,
            )
            runs[g] = train(cfg, None, progress=False)
        a, b = params_of(runs["explicit"]), params_of(runs["autodiff"])
        assert a["W"].dtype == np.float64
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-12)
        # and training did something
        assert np.abs(a["W_out"]).max() > 0
    finally:
        jax.config.update("jax_enable_x64", False)


# --------------------------------------------------------------------------------------------
# Optimizers: every path trains (the loss falls) and is deterministic.

OPTIMIZERS = [
    ("sgd", "lazy", 0.05),
    ("adam", "lazy", 0.01),
    ("adam", "dense", 0.01),
    ("adagrad", "lazy", 0.2),
    ("rmsprop", "dense", 0.01),
]


@pytest.mark.parametrize("name,sparse,lr", OPTIMIZERS)
def test_optimizers_train(corpus, tmp_path, name, sparse, lr):
    cfg = tiny_cfg(
        corpus,
        f"optimizer.name={name}",
        f"optimizer.sparse={sparse}",
        f"optimizer.learning_rate={lr}",
        "optimizer.schedule=constant",
        "train.epochs=3",
    )
    result = train(cfg, tmp_path / "run", progress=False)
    epochs = [
        json.loads(line)
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "epoch"
    ]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert all(np.isfinite(e["loss"]) and e["words_per_s"] > 0 for e in epochs)
    assert int(result.state.step) == epochs[-1]["step"] > 0


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
@pytest.mark.parametrize(
    "how", ["train.kernel=xla", "train.kernel=cpu", "train.gradients=autodiff"]
)
def test_rare_rows_keep_rate_one(corpus, arch, how):
    """optimizer.table_scales_min_count=m with W at 3x: the steps move the rows of words
    seen >= m times as the 3x steps do and the rarer words' rows as the unscaled steps do
    (W_out as both), on the XLA step (rule entries; autodiff's dense gradient) and the
    fused kernel. Two steps: the first moves W_out alone (it starts at zero), the same in
    all three runs."""
    from sgjax import kernels

    if how == "train.kernel=cpu" and not kernels.available():
        pytest.skip(f"the fused CPU kernel is not built here: {kernels.why()}")
    base = [f"model.architecture={arch}", how, "train.steps_per_call=2"]
    first = build(tiny_cfg(corpus, *base))
    counts, W0 = first.vocab.counts, np.asarray(first.state.params["W"])
    m = int(counts[len(counts) // 2])
    start = int((counts >= m).sum())
    assert 0 < start < len(counts)
    moved = {}
    for name, sets in {
        "rare": ["optimizer.table_scales.W=3", f"optimizer.table_scales_min_count={m}"],
        "3x": ["optimizer.table_scales.W=3"],
        "1x": [],
    }.items():
        cfg = tiny_cfg(corpus, *base, *sets)
        run = build(cfg)
        assert run.spec.rare_scale == (1 / 3 if name == "rare" else 1.0)
        group = next(group_batches(_batches(cfg, run.vocab, run.encoded, 0), 2))
        state, _ = train_step_jit(run.state, group, run.tables, run.spec)
        moved[name] = {k: np.asarray(v) for k, v in state.params.items()}
    rare, x3, x1 = moved["rare"], moved["3x"], moved["1x"]
    np.testing.assert_array_equal(rare["W"][:start], x3["W"][:start])
    np.testing.assert_allclose(rare["W"][start:], x1["W"][start:], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(rare["W_out"], x3["W_out"])
    step3 = np.abs(x3["W"][start:] - W0[start:]).max()
    assert step3 > 1e-5 and np.abs(rare["W"][start:] - x3["W"][start:]).max() > 0.5 * step3


def test_same_seed_same_vectors_other_seed_other_vectors(corpus):
    a = params_of(train(tiny_cfg(corpus), None, progress=False))
    b = params_of(train(tiny_cfg(corpus), None, progress=False))
    c = params_of(train(tiny_cfg(corpus, "train.seed=1"), None, progress=False))
    np.testing.assert_array_equal(a["W"], b["W"])
    np.testing.assert_array_equal(a["W_out"], b["W_out"])
    assert not np.array_equal(a["W"], c["W"])


# --------------------------------------------------------------------------------------------
# The run directory.


def test_run_directory_contents(corpus, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_cfg(corpus, "train.log_every_steps=5")
    result = train(cfg, out, progress=False)
    for name in (
        "config.yaml",
        "vocab.txt",
        "metrics.jsonl",
        "vectors.bin",
        "vectors.txt",
        "scores.json",
    ):
        assert (out / name).is_file(), name
    # the resolved config reloads to the same config
    assert load_config(out / "config.yaml") == cfg
    # vocab.txt: the C tool's -save-vocab format, "</s>" first
    vocab_lines = (out / "vocab.txt").read_text().splitlines()
    assert vocab_lines[0].split()[0] == "</s>"
    assert len(vocab_lines) == len(result.vectors) + 1
    # vectors in both formats equal the trained W
    W = np.asarray(result.state.params["W"])
    for name in ("vectors.bin", "vectors.txt"):
        kv = read_word2vec(out / name)
        assert kv.words == result.vectors.words
        np.testing.assert_allclose(kv.matrix, W, rtol=1e-5, atol=1e-6)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in records if r["event"] == "log"]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert len(epochs) == 2 and logs
    assert {"loss", "lr", "words_per_s", "epoch_time_s", "words"} <= set(epochs[0])
    for e in epochs:  # the first call of each epoch: a part of it, in time and words
        assert 0 < e["first_call_s"] <= e["epoch_time_s"]
        assert 0 < e["first_call_words"] <= e["words"]
    assert all(r["words_total"] > 0 for r in records)
    # the last record: the scores and where the run's seconds went (sgjax.timing)
    end = records[-1]
    assert end["event"] == "end" and end["phases_s"] == result.timing["phases_s"]
    assert {"vocab", "encode", "setup", "compile", "train", "eval", "checkpoint", "write"} <= set(
        end["phases_s"]
    )
    assert min(end["phases_s"].values()) >= 0 and end["phases_s"]["train"] > 0
    assert end["other_s"] >= 0 and sum(end["phases_s"].values()) <= end["wall_s"]
    assert {k: end[k] for k in result.scores} == result.scores
    # words processed per epoch = the corpus' in-vocabulary tokens
    assert (
        epochs[0]["words"] == epochs[1]["words"] == sum(len(line.split()) for line in open(corpus))
    )
    # a second run into the same directory is refused (tests/test_rundir.py: the rest)
    with pytest.raises(RunDirError, match="--resume"):
        train(cfg, out, progress=False)


def test_vectors_load_in_gensim(corpus, tmp_path):
    gensim_models = pytest.importorskip("gensim.models")
    result = train(tiny_cfg(corpus), tmp_path, progress=False)
    for name, binary in (("vectors.bin", True), ("vectors.txt", False)):
        kv = gensim_models.KeyedVectors.load_word2vec_format(str(tmp_path / name), binary=binary)
        assert list(kv.index_to_key) == list(result.vectors.words)
        np.testing.assert_allclose(
            kv.vectors, np.asarray(result.state.params["W"]), rtol=1e-5, atol=1e-6
        )


# --------------------------------------------------------------------------------------------
# Checkpoints, interruption and resume.


def _interrupt_after(monkeypatch, calls: int, sig: int = signal.SIGINT) -> None:
    """Send ``sig`` to ourselves after ``calls`` compiled calls (as Ctrl-C would)."""
    from sgjax.progress import Progress

    seen = {"n": 0}
    original = Progress.__call__

    def progress(self, words, m):
        original(self, words, m)
        seen["n"] += 1
        if seen["n"] == calls:
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(Progress, "__call__", progress)


@pytest.mark.parametrize(
    "checkpoint_every_steps,extra,at_end",
    [
        (0, (), False),  # the defaults: sentences shuffled each epoch, batches by window
        (8, ("data.shuffle=false", "train.window_buckets=false"), False),  # the file's order
        (0, (), True),  # Ctrl-C in an epoch's last call: the checkpoint is the epoch's end
        # CBOW HS's defaults: row damping, the input rows at twice the rate (a chained state)
        (8, ("model.architecture=cbow", "model.output=hierarchical", "train.batch_size=16"), False),
    ],
)
def test_interrupted_run_resumes_to_the_same_vectors(
    corpus, tmp_path, monkeypatch, checkpoint_every_steps, extra, at_end
):
    cfg = tiny_cfg(
        corpus, "train.epochs=3", f"train.checkpoint_every_steps={checkpoint_every_steps}", *extra
    )
    full = train(cfg, tmp_path / "full", progress=False)
    handler = signal.getsignal(signal.SIGINT)  # (SIG_IGN where pytest runs in the background)

    steps_per_epoch = int(full.state.step) // 3
    calls_per_epoch = -(-steps_per_epoch // cfg.train.steps_per_call)
    assert calls_per_epoch >= 2, "the tiny run must have several calls per epoch"
    with monkeypatch.context() as m:
        _interrupt_after(m, calls_per_epoch if at_end else calls_per_epoch + 1)
        with pytest.raises(Interrupted, match="checkpoint"):
            train(cfg, tmp_path / "cut", progress=False)
    ckpt = checkpoint.latest(tmp_path / "cut")
    meta = json.loads((ckpt / "meta.json").read_text())
    if at_end:  # epoch 1's end, not its last batch (a resume would count epoch 1 twice)
        assert (meta["epoch"], meta["batch_in_epoch"]) == (1, 0)
    else:
        assert meta["epoch"] == 1 and meta["batch_in_epoch"] > 0  # mid-epoch 2
    assert not (tmp_path / "cut" / "vectors.bin").exists()
    # SIGINT handling is restored after the run
    assert signal.getsignal(signal.SIGINT) is handler

    resumed = train(None, tmp_path / "cut", resume=True, progress=False)
    a, b = params_of(full), params_of(resumed)
    np.testing.assert_array_equal(a["W"], b["W"])
    np.testing.assert_array_equal(a["W_out"], b["W_out"])
    assert int(resumed.state.step) == int(full.state.step)
    assert (tmp_path / "cut" / "vectors.bin").read_bytes() == (
        tmp_path / "full" / "vectors.bin"
    ).read_bytes()
    # metrics.jsonl of the resumed run has every epoch once
    epochs = [
        json.loads(line)["epoch"]
        for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "epoch"
    ]
    assert epochs == [1, 2, 3]


def test_background_checkpoints_hold_the_state_they_were_given(corpus, tmp_path):
    """Epoch checkpoints are written in a thread while the next epoch updates the tables in
    place (donated buffers, the fused kernel): resuming from the first epoch's must give
    the uninterrupted run's vectors."""
    cfg = tiny_cfg(corpus, "train.epochs=2", "train.checkpoint_every_seconds=0")
    full = train(cfg, tmp_path / "full", progress=False)
    root = tmp_path / "full" / "checkpoints"
    first, last = sorted(p.name for p in root.glob("step_*"))  # kept: the newest 2
    shutil.rmtree(root / last)
    (root / "LATEST").write_text(first + "\n")
    (tmp_path / "full" / "vectors.bin").unlink()
    again = train(None, tmp_path / "full", resume=True, progress=False)
    for k in ("W", "W_out"):
        np.testing.assert_array_equal(params_of(full)[k], params_of(again)[k])


@pytest.mark.parametrize("every_s", [0.0, 10.0, 1e9])
def test_checkpoints_by_time(corpus, monkeypatch, every_s):
    """train.checkpoint_every_seconds: a checkpoint at the first call boundary or epoch end
    that many seconds after the previous one, always one at the last epoch's end; 0: one at
    every epoch's end. The clock moves 4 s a call."""
    from sgjax import loop

    cfg = tiny_cfg(corpus, "train.epochs=3")
    run = build(cfg)
    now = {"t": 0.0}
    monkeypatch.setattr(loop, "_now", lambda: now["t"])
    saved, boundaries = [], []

    def progress(words, m):  # once per call
        now["t"] += 4.0
        boundaries.append(now["t"])

    def save(state, why):
        saved.append((why, int(state.epoch), int(state.batch_in_epoch), now["t"]))

    final = fit(
        run.state,
        run.batches,
        run.tables,
        run.spec,
        epochs=3,
        steps_per_call=4,
        checkpoint_every_seconds=every_s,
        hooks=Hooks(checkpoint=save, progress=progress),
    )
    assert len(boundaries) >= 6, "several calls per epoch"
    assert saved[-1][:3] == ("epoch", 3, 0)  # the end of the run, always
    # none at an epoch's last batch (a resume from it would redo the epoch's end): there,
    # the epoch's end decides
    steps_per_epoch = int(final.step) // 3
    assert all(b < steps_per_epoch for _, _, b, _ in saved)
    if every_s == 0:
        assert [s[:3] for s in saved] == [("epoch", e, 0) for e in (1, 2, 3)]
    elif every_s > boundaries[-1]:
        assert len(saved) == 1
    else:
        assert "time" in {s[0] for s in saved[:-1]}  # mid-epoch
        # each at the first boundary due: 10 s after the previous one, not a call later
        times = [0.0] + [s[3] for s in saved]
        for before, at in zip(times[:-2], times[1:-1], strict=True):
            assert every_s <= at - before < every_s + 4.0
        assert times[-1] - times[-2] < every_s + 4.0  # and none skipped before the end


def test_resume_drops_the_records_after_its_checkpoint(corpus, tmp_path):
    """A run that died after epoch records whose checkpoint it never wrote (checkpoints by
    time skip epoch ends): the resume makes those records again, so metrics.jsonl keeps
    them once, as an uninterrupted run's."""
    cfg = tiny_cfg(corpus, "train.epochs=3", "train.checkpoint_every_seconds=0")
    train(cfg, tmp_path / "run", progress=False)
    first = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    root = tmp_path / "run" / "checkpoints"
    shutil.rmtree(sorted(root.glob("step_*"))[-1])  # epoch 3's: as if never written
    train(None, tmp_path / "run", resume=True, progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2, 3]
    assert [r["event"] for r in records].count("end") == 1
    assert len(records) == len(first)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(None, tmp_path / "nothing", resume=True, progress=False)


def test_cli_interrupt_and_resume(corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["train", "--quiet", "--out", str(out)]
    for o in (
        f"data.corpus={corpus}",
        "data.min_count=1",
        "model.dim=8",
        "train.batch_size=64",
        "train.steps_per_call=4",
        "train.epochs=2",
        "eval.analogies=false",
        "eval.similarity=false",
    ):
        args += ["--set", o]
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        assert cli_main(args) == 130
    assert "sgjax train --resume" in capsys.readouterr().err
    assert cli_main(["train", "--quiet", "--resume", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["out"] == str(out)
    assert (out / "vectors.txt").is_file()


# --------------------------------------------------------------------------------------------
# Failing loudly.


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    cfg = tiny_cfg(corpus, "train.epochs=1")
    run = build(cfg, tmp_path)
    saved = []

    def save(state, why):
        if state is not None:
            saved.append(checkpoint.save(tmp_path, state, {"step": int(state.step)}))
        return saved[-1] if saved else None

    hooks = Hooks(checkpoint=save)
    state = fit(
        run.state,
        run.batches,
        run.tables,
        run.spec,
        epochs=1,
        steps_per_call=8,
        hooks=hooks,
    )
    good = checkpoint.latest(tmp_path)
    assert good is not None and good == saved[-1]
    W_good = np.asarray(state.params["W"]).copy()

    poisoned = state.replace(params={**state.params, "W": state.params["W"].at[:].set(jnp.nan)})
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss or parameters in epoch 2.*" + good.name
    ):
        fit(
            poisoned,
            run.batches,
            run.tables,
            run.spec,
            epochs=2,
            steps_per_call=8,
            hooks=hooks,
        )
    assert checkpoint.latest(tmp_path) == good
    restored, _ = checkpoint.restore(good, state)
    np.testing.assert_array_equal(np.asarray(restored.params["W"]), W_good)


def test_cli_huge_learning_rate_is_a_clear_error(corpus, tmp_path, capsys):
    args = ["train", "--quiet", "--out", str(tmp_path / "run")]
    for o in (
        f"data.corpus={corpus}",
        "data.min_count=1",
        "model.dim=8",
        "train.batch_size=64",
        "train.steps_per_call=4",
        "train.epochs=1",
        "optimizer.learning_rate=1e30",
        "optimizer.schedule=constant",
        "eval.analogies=false",
        "eval.similarity=false",
    ):
        args += ["--set", o]
    assert cli_main(args) == 3
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "learning_rate" in err


def test_recompilation_is_an_error(corpus):
    cfg = tiny_cfg(corpus, "train.epochs=1")
    run = build(cfg)

    def batches(epoch):
        for i, b in enumerate(_batches(cfg, run.vocab, run.encoded, epoch)):
            if i < 16:
                yield b
            else:  # a batch of another size: a new program would be compiled
                yield {k: (v[:32] if v.ndim else v) for k, v in b.items()}

    with pytest.raises(RecompilationError, match="compiled again"):
        fit(run.state, batches, run.tables, run.spec, epochs=1, steps_per_call=8)


def test_group_batches_pads_the_last_call_with_inactive_steps():
    bs = [
        {
            "center": np.full(4, i),
            "context": np.zeros((4, 2)),
            "mask": np.ones((4, 2), bool),
            "words": np.asarray(i, np.int32),
        }
        for i in range(5)
    ]
    groups = list(group_batches(bs, 3))
    assert [g["center"].shape for g in groups] == [(3, 4), (3, 4)]
    assert groups[0]["active"].tolist() == [True, True, True]
    assert groups[1]["active"].tolist() == [True, True, False]
    assert groups[1]["words"].tolist()[:2] == [3, 4]


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.architecture=skipgrm", "model.architecture"),
        ("optimizer.name=adamm", "optimizer.name"),
        ("train.bogus=1", "train.bogus"),
        ("model.dim=-3", "model.dim"),
    ],
)
def test_cli_bad_config_names_the_key(tmp_path, capsys, override, key):
    assert cli_main(["train", "--quiet", "--out", str(tmp_path), "--set", override]) == 2
    assert key in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was written


def test_resume_refuses_config_changes(tmp_path, capsys):
    assert cli_main(["train", "--resume", "--out", str(tmp_path), "--set", "model.dim=3"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_config_error_type():
    with pytest.raises(ConfigError):
        load_config(None, ["model.window=0"])
