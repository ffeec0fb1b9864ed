"""Checkpoints: atomic, pickle-free, complete, newest wins, old ones pruned."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgjax import checkpoint


def _state(v: float):
    params = {"W": jnp.full((4, 3), v), "W_out": jnp.zeros((4, 3))}
    return {"params": params, "opt": optax.adam(1e-3).init(params), "step": jnp.int32(v)}


def test_save_restore_roundtrip(tmp_path):
    s = _state(2.0)
    path = checkpoint.save(tmp_path, s, {"step": 2, "epoch": 0})
    assert checkpoint.latest(tmp_path) == path
    got, meta = checkpoint.restore(path, _state(0.0))
    assert meta == {"step": 2, "epoch": 0}
    np.testing.assert_array_equal(got["params"]["W"], s["params"]["W"])
    assert type(got["opt"][0]).__name__ == "ScaleByAdamState"  # structure restored
    assert int(got["step"]) == 2
    # no pickle anywhere in the checkpoint
    for f in path.rglob("*"):
        if f.is_file():
            assert b"\x80\x04\x95" not in f.read_bytes()[:3]


def test_newest_wins_and_old_are_pruned(tmp_path):
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, _state(float(step)), {"step": step}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert names == ["step_0000000002", "step_0000000003"]
    got, meta = checkpoint.restore(checkpoint.latest(tmp_path), _state(0.0))
    assert meta["step"] == 3 and float(got["params"]["W"][0, 0]) == 3.0


def test_interrupted_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, _state(1.0), {"step": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "write_text_atomic", boom)
    with pytest.raises(OSError):
        checkpoint.save(tmp_path, _state(5.0), {"step": 5})
    monkeypatch.undo()
    latest = checkpoint.latest(tmp_path)
    assert latest.name == "step_0000000001"
    got, meta = checkpoint.restore(latest, _state(0.0))
    assert meta["step"] == 1 and float(got["params"]["W"][0, 0]) == 1.0
    assert not (tmp_path / "checkpoints" / "step_0000000005").exists()


def test_latest_none_and_incomplete(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "LATEST").write_text("step_0000000009\n")
    with pytest.raises(FileNotFoundError, match="step_0000000009"):
        checkpoint.latest(tmp_path)


def test_write_text_atomic(tmp_path):
    p = tmp_path / "a.json"
    checkpoint.write_text_atomic(p, json.dumps({"x": 1}))
    checkpoint.write_text_atomic(p, json.dumps({"x": 2}))
    assert json.loads(p.read_text()) == {"x": 2}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]
