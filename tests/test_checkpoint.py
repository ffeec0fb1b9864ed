"""Checkpoints: atomic, pickle-free, complete, newest wins, old ones pruned by orbax's
CheckpointManager (train.keep_checkpoints), epoch ends kept (train.keep_epoch_checkpoints),
runs of the layout before orbax's manager still read."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_train import tiny_cfg, write_toy_corpus

from sgjax import checkpoint
from sgjax.experiment import train


def _state(v: float):
    params = {"W": jnp.full((4, 3), v), "W_out": jnp.zeros((4, 3))}
    return {"params": params, "opt": optax.adam(1e-3).init(params), "step": jnp.int32(v)}


def _steps(run) -> list[int]:
    """The step directories under RUN/checkpoints, whatever they hold."""
    return sorted(int(p.name[5:]) for p in (run / "checkpoints").glob("step_*"))


def _meta(path) -> dict:
    return json.loads((path / "meta.json").read_text())


def test_save_restore_roundtrip(tmp_path):
    s = _state(2.0)
    path = checkpoint.save(tmp_path, s, {"step": 2, "epoch": 0})
    assert path == tmp_path / "checkpoints" / "step_0000000002"  # orbax's naming = path_of
    assert path == checkpoint.path_of(tmp_path, {"step": 2})
    assert checkpoint.latest(tmp_path) == path
    assert (path / "state").is_dir() and (path / "meta.json").is_file()
    assert checkpoint.verify(path) is None
    got, meta = checkpoint.restore(path, _state(0.0))
    assert meta == {"step": 2, "epoch": 0}
    np.testing.assert_array_equal(got["params"]["W"], s["params"]["W"])
    assert type(got["opt"][0]).__name__ == "ScaleByAdamState"  # structure restored
    assert int(got["step"]) == 2
    # every file of state/ is in meta.json's digests; no pickle anywhere in the checkpoint
    digests = _meta(path)["files_sha256"]
    written = {str(f.relative_to(path / "state")) for f in (path / "state").rglob("*")}
    assert set(digests) <= written and len(digests) >= 3
    for f in path.rglob("*"):
        if f.is_file():
            assert b"\x80\x04\x95" not in f.read_bytes()[:3]


def test_tables_are_stored_uncompressed_and_restored(tmp_path):
    """No zstd (sgjax.ckpt_manager): a table of zeros takes its whole size on disk."""
    zeros = {"W": np.zeros((2000, 100), np.float32), "b": np.arange(7.0)}
    path = checkpoint.save(tmp_path, zeros, {"step": 1, "epoch": 0})
    stored = sum(f.stat().st_size for f in (path / "state").rglob("*") if f.is_file())
    assert stored >= zeros["W"].nbytes
    got, _ = checkpoint.restore(path, jax.tree.map(np.ones_like, zeros))
    jax.tree.map(np.testing.assert_array_equal, got, zeros)


def test_checkpoints_written_compressed_are_restored(tmp_path, monkeypatch):
    """Runs checkpointed before the tables were stored uncompressed (orbax's zstd) resume."""
    from orbax.checkpoint._src.handlers import pytree_checkpoint_handler as handlers

    class Compressing(handlers.PyTreeCheckpointHandler):
        def __init__(self, **kw):
            super().__init__(**{**kw, "use_compression": True})

    with monkeypatch.context() as m:
        m.setattr(handlers, "PyTreeCheckpointHandler", Compressing)
        zeros = {"W": np.zeros((2000, 100), np.float32)}
        path = checkpoint.save(tmp_path, zeros, {"step": 1, "epoch": 0})
    stored = sum(f.stat().st_size for f in (path / "state").rglob("*") if f.is_file())
    assert stored < zeros["W"].nbytes / 10  # compressed
    got, meta = checkpoint.restore(path, {"W": np.ones((2000, 100), np.float32)})
    np.testing.assert_array_equal(got["W"], zeros["W"])
    assert meta["step"] == 1 and checkpoint.verify(path) is None


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_newest_wins_and_old_are_pruned(tmp_path, keep):
    for step in (1, 2, 3, 4, 5):
        checkpoint.save(tmp_path, _state(float(step)), {"step": step}, keep=keep)
    assert _steps(tmp_path) == [1, 2, 3, 4, 5][-keep:]
    got, meta = checkpoint.restore(checkpoint.latest(tmp_path), _state(0.0))
    assert meta["step"] == 5 and float(got["params"]["W"][0, 0]) == 5.0
    assert [p.name for p in checkpoint.candidates(tmp_path)][0] == "step_0000000005"


def test_keep_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="keep=0"):
        checkpoint.save(tmp_path, _state(1.0), {"step": 1}, keep=0)
    with pytest.raises(ValueError, match="keep=0"):
        checkpoint.Saver(tmp_path, keep=0)


@pytest.mark.parametrize(
    "keep,forever,expected",
    [
        (1, {2, 4}, [2, 4, 6]),
        (2, {2, 4}, [2, 4, 5, 6]),
        (1, {6}, [6]),
        (3, set(), [4, 5, 6]),
        (1, {1, 2, 3, 4, 5, 6}, [1, 2, 3, 4, 5, 6]),
    ],
)
def test_keep_forever_survives_rotation(tmp_path, keep, forever, expected):
    """Each save is its own CheckpointManager: what is kept forever is read back from the
    checkpoints' meta.json, so it survives sessions (a resumed run)."""
    for step in range(1, 7):
        checkpoint.save(
            tmp_path, _state(float(step)), {"step": step}, keep=keep, keep_forever=step in forever
        )
    assert _steps(tmp_path) == expected
    for path in checkpoint.candidates(tmp_path):
        step = int(path.name[5:])
        assert _meta(path).get("keep_forever", False) == (step in forever)
        got, meta = checkpoint.restore(path, _state(0.0))
        assert meta == {"step": step}  # save's own records are not the caller's
        assert float(got["params"]["W"][0, 0]) == step


@pytest.mark.parametrize("background", [True, False])
@pytest.mark.parametrize("keep_epochs", [True, False])
def test_saver_keeps_epoch_ends(tmp_path, background, keep_epochs):
    """Saver(keep_epochs=True) keeps the checkpoints whose meta is an epoch's end (batch 0
    of an epoch after the first), or that save is told to keep; the rest rotate."""
    saver = checkpoint.Saver(tmp_path, background=background, keep=1, keep_epochs=keep_epochs)
    assert saver.wait() is None
    metas = [
        {"step": 3, "epoch": 0, "batch_in_epoch": 3},  # N-step
        {"step": 5, "epoch": 1, "batch_in_epoch": 0},  # epoch 1's end
        {"step": 8, "epoch": 1, "batch_in_epoch": 3},
        {"step": 10, "epoch": 2, "batch_in_epoch": 0},  # epoch 2's end
        {"step": 12, "epoch": 2, "batch_in_epoch": 2},  # an interrupt
    ]
    for meta in metas:
        path = saver.save(_state(float(meta["step"])), meta, wait=meta["step"] == 12)
        assert path == checkpoint.path_of(tmp_path, meta)
    assert saver.wait() == checkpoint.latest(tmp_path) == tmp_path / "checkpoints/step_0000000012"
    assert _steps(tmp_path) == ([5, 10, 12] if keep_epochs else [12])
    # told explicitly: kept whatever the meta says, or not kept although an epoch's end
    saver.save(_state(13.0), {"step": 13}, keep_forever=True)
    saver.save(_state(15.0), {"step": 15, "epoch": 3, "batch_in_epoch": 0}, keep_forever=False)
    saver.wait()
    assert _steps(tmp_path) == ([5, 10, 13, 15] if keep_epochs else [13, 15])


@pytest.mark.parametrize("keep", [1, 2])
def test_the_same_step_saved_again_replaces_it(tmp_path, keep):
    """An epoch's end on an N-step boundary saves the same step twice; orbax refuses an
    existing step, so the old one is set aside and removed after the commit."""
    checkpoint.save(tmp_path, _state(1.0), {"step": 1}, keep=keep)
    checkpoint.save(tmp_path, _state(3.0), {"step": 3, "epoch": 0}, keep=keep)
    path = checkpoint.save(tmp_path, _state(4.0), {"step": 3, "epoch": 1}, keep=keep)
    assert _steps(tmp_path) == [1, 3][-keep:]
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [f"step_{s:010d}" for s in [1, 3][-keep:]]  # no copy left
    got, meta = checkpoint.restore(path, _state(0.0))
    assert meta == {"step": 3, "epoch": 1} and float(got["params"]["W"][0, 0]) == 4.0
    assert checkpoint.verify(path) is None


def test_a_step_below_the_newest_is_saved(tmp_path):
    """A run resumed from an older checkpoint (the newest one damaged) saves steps below the
    newest; orbax skips those unless forced."""
    for step in (1, 2, 5):
        checkpoint.save(tmp_path, _state(float(step)), {"step": step})
    path = checkpoint.save(tmp_path, _state(3.0), {"step": 3})
    assert path.is_dir() and _steps(tmp_path) == [3, 5]
    state_file = max(
        (p for p in (tmp_path / "checkpoints/step_0000000005/state").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    state_file.write_bytes(b"damaged")
    state, meta, got = checkpoint.restore_newest(tmp_path, _state(0.0))
    assert got == path and meta == {"step": 3} and float(state["params"]["W"][0, 0]) == 3.0


def _failing_meta_writes(monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "write_text_atomic", boom)


def test_interrupted_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, _state(1.0), {"step": 1})
    with monkeypatch.context() as m:  # fails inside orbax's save, before its commit
        _failing_meta_writes(m)
        with pytest.raises(OSError, match="disk full"):
            checkpoint.save(tmp_path, _state(5.0), {"step": 5})
    latest = checkpoint.latest(tmp_path)
    assert latest.name == "step_0000000001"
    got, meta = checkpoint.restore(latest, _state(0.0))
    assert meta["step"] == 1 and float(got["params"]["W"][0, 0]) == 1.0
    assert not (tmp_path / "checkpoints" / "step_0000000005").exists()
    unfinished = list((tmp_path / "checkpoints").glob("step_0000000005*"))
    assert unfinished and all("orbax-checkpoint-tmp" in p.name for p in unfinished)
    skipped = []
    _, meta, path = checkpoint.restore_newest(
        tmp_path, _state(0.0), on_skip=lambda p, why: skipped.append((p, why))
    )
    assert path == latest and [p for p, _ in skipped] == unfinished
    assert "unfinished" in skipped[0][1]
    # the next save removes the unfinished write, and may write the same step
    checkpoint.save(tmp_path, _state(5.0), {"step": 5})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_0000000001",
        "step_0000000005",
    ]


def test_interrupted_rewrite_of_the_same_step_keeps_the_old_one(tmp_path, monkeypatch):
    """With keep=1 the step being written again is the run's only checkpoint: until the new
    one is committed, its set-aside copy is still a candidate."""
    checkpoint.save(tmp_path, _state(1.0), {"step": 1}, keep=1)
    checkpoint.save(tmp_path, _state(3.0), {"step": 3, "epoch": 0}, keep=1)
    with monkeypatch.context() as m:
        _failing_meta_writes(m)
        with pytest.raises(OSError, match="disk full"):
            checkpoint.save(tmp_path, _state(4.0), {"step": 3, "epoch": 1}, keep=1)
    (only,) = checkpoint.candidates(tmp_path)
    assert only.name == "step_0000000003.replaced" and checkpoint.latest(tmp_path) == only
    state, meta, path = checkpoint.restore_newest(tmp_path, _state(0.0))
    assert path == only and meta == {"step": 3, "epoch": 0}
    assert float(state["params"]["W"][0, 0]) == 3.0
    # a resumed run goes on from it; the next committed save removes the copy
    checkpoint.save(tmp_path, _state(6.0), {"step": 6}, keep=1)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000000006"]


def test_latest_none_and_incomplete(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    assert checkpoint.candidates(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        checkpoint.restore_newest(tmp_path, _state(0.0))
    root = tmp_path / "checkpoints"
    (root / "step_0000000009").mkdir(parents=True)  # no meta.json: incomplete
    (root / "step_0000000011.orbax-checkpoint-tmp").mkdir()  # never committed
    (root / "step_0000000011.orbax-checkpoint-tmp" / "meta.json").write_text("{}")
    assert checkpoint.latest(tmp_path) is None
    path = checkpoint.save(tmp_path, _state(2.0), {"step": 2})
    assert checkpoint.latest(tmp_path) == path
    assert checkpoint.candidates(tmp_path) == [path]


def _save_old_layout(run, state, meta):
    """A checkpoint as sgjax wrote them before orbax's CheckpointManager: state/ of orbax's
    StandardCheckpointer, meta.json, and RUN/checkpoints/LATEST naming the newest."""
    import orbax.checkpoint as ocp

    path = checkpoint.path_of(run, meta)
    path.mkdir(parents=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save((path / "state").absolute(), jax.tree.map(np.asarray, state))
    (path / "meta.json").write_text(json.dumps(meta))
    (run / "checkpoints" / "LATEST").write_text(path.name + "\n")
    return path


def test_runs_of_the_layout_before_orbax_manager_are_read_and_rotated(tmp_path):
    run = tmp_path / "run"
    W = np.arange(12, dtype=np.float32).reshape(3, 4)
    (run / "checkpoints").mkdir(parents=True)
    (run / "vocab.txt").write_text("</s> 0\nthe 9\ncat 5\nsat 2\n")
    for step in (1, 2):
        _save_old_layout(run, {"params": {"W": W + step, "W_out": W}}, {"step": step})
    assert checkpoint.latest(run).name == "step_0000000002"
    assert [p.name for p in checkpoint.candidates(run)] == ["step_0000000002", "step_0000000001"]
    vocab, params, meta = checkpoint.load_run_state(run)
    assert vocab.words == ("the", "cat", "sat") and meta == {"step": 2}
    np.testing.assert_array_equal(params["W"], W + 2)
    target = {"params": {"W": W, "W_out": W}}
    state, meta, path = checkpoint.restore_newest(run, target)
    assert path.name == "step_0000000002" and meta == {"step": 2}
    np.testing.assert_array_equal(state["params"]["W"], W + 2)
    # the next save joins them to orbax's rotation and drops LATEST
    checkpoint.save(run, {"params": {"W": W + 3, "W_out": W}}, {"step": 3}, keep=2)
    assert _steps(run) == [2, 3] and not (run / "checkpoints" / "LATEST").exists()
    np.testing.assert_array_equal(checkpoint.load_run_state(run)[1]["W"], W + 3)


def test_write_text_atomic(tmp_path):
    p = tmp_path / "a.json"
    checkpoint.write_text_atomic(p, json.dumps({"x": 1}))
    checkpoint.write_text_atomic(p, json.dumps({"x": 2}))
    assert json.loads(p.read_text()) == {"x": 2}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


# --------------------------------------------------------------------------------------------
# A training run: train.keep_checkpoints and train.keep_epoch_checkpoints.


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize(
    "keep,keep_epochs", [(1, False), (1, True), (3, False), (2, True)], ids=str
)
def test_training_keeps_the_configured_checkpoints(corpus, tmp_path, keep, keep_epochs):
    cfg = tiny_cfg(
        corpus,
        "train.epochs=3",
        "train.checkpoint_every_steps=5",
        f"train.keep_checkpoints={keep}",
        f"train.keep_epoch_checkpoints={str(keep_epochs).lower()}",
    )
    out = tmp_path / "run"
    result = train(cfg, out, progress=False)
    found = checkpoint.candidates(out)
    metas = [_meta(p) for p in found]
    epoch_ends = [m["step"] for m in metas if m["batch_in_epoch"] == 0]
    steps = [m["step"] for m in metas]
    assert steps == sorted(steps, reverse=True) and steps[0] == int(result.state.step)
    assert _steps(out) == sorted(steps)  # nothing else under checkpoints/
    if keep_epochs:  # every epoch's end, and the newest `keep` of all
        records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert sorted(epoch_ends) == [r["step"] for r in records if r["event"] == "epoch"]
        assert set(steps) - set(epoch_ends) <= set(steps[:keep])
        assert all(m.get("keep_forever") for m in metas if m["batch_in_epoch"] == 0)
    else:
        assert len(steps) == keep
        assert not any(m.get("keep_forever") for m in metas)
    for p in found:
        assert checkpoint.verify(p) is None


def test_warm_up_imports_orbax_in_a_thread():
    """A run imports orbax beside its vocabulary and encoding (ckpt_manager.warm_up), not in
    its last checkpoint's thread during the evaluation."""
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "from sgjax import ckpt_manager\n"
        "before = 'orbax.checkpoint' in sys.modules\n"
        "ckpt_manager.warm_up()\n"
        "[t.join() for t in threading.enumerate() if t.name == 'sgjax-orbax-import']\n"
        "print(before, 'orbax.checkpoint' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True"], out.stderr
