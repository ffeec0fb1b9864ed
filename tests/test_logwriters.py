"""sgjax.logwriters: the jsonl and tensorboard metric writers, read back by sgjax.report and
by TensorBoard's own reader (EventAccumulator)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sgjax import logwriters
from sgjax.report import read_metrics

T0 = 1_700_000_000.25
RECORDS = [
    {"event": "log", "epoch": 1, "step": 10, "lr": 0.025, "loss": 3.5, "words_total": 640},
    {"event": "log", "epoch": 1, "step": 20, "lr": 0.02, "loss": 2.75, "words_total": 1280},
    {
        "event": "epoch",
        "epoch": 1,
        "step": 25,
        "loss": 3.0,
        "lr": 0.019,
        "words_per_s": 4321.5,
        "analogy": 0.125,
        "analogy_evaluated": 96,
        "wordsim_spearman": None,
        "words_total": 1600,
    },
    {
        "event": "end",
        "words_total": 1600,
        "analogy": 0.125,
        "phases_s": {"vocab": 0.5, "train": 7.25},
        "wall_s": 9.0,
        "time": T0,
        "note": "not a number",
        "flag": True,
    },
]

# tag -> [(step, value)] that the tensorboard writer gives for RECORDS
SCALARS = {
    "log/epoch": [(10, 1), (20, 1)],
    "log/lr": [(10, 0.025), (20, 0.02)],
    "log/loss": [(10, 3.5), (20, 2.75)],
    "log/words_total": [(10, 640), (20, 1280)],
    "epoch/epoch": [(25, 1)],
    "epoch/loss": [(25, 3.0)],
    "epoch/lr": [(25, 0.019)],
    "epoch/words_per_s": [(25, 4321.5)],
    "epoch/analogy": [(25, 0.125)],
    "epoch/analogy_evaluated": [(25, 96)],
    "epoch/words_total": [(25, 1600)],
    "end/analogy": [(1600, 0.125)],
    "end/phases_s/vocab": [(1600, 0.5)],
    "end/phases_s/train": [(1600, 7.25)],
    "end/wall_s": [(1600, 9.0)],
}


def read_tensorboard(run: Path) -> dict[str, list]:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def write_all(kinds, run: Path, records=RECORDS) -> None:
    w = logwriters.open_writers(kinds, run)
    for r in records:
        w.write(r)
    w.close()


# --------------------------------------------------------------------------------------------
# jsonl


def test_jsonl_writer_appends_records_with_their_time(tmp_path):
    before = [dict(r) for r in RECORDS]
    w = logwriters.WRITERS["jsonl"](tmp_path)
    for r in RECORDS:
        w.write(r)
    w.close()
    assert RECORDS == before  # the caller's records are not changed
    got = read_metrics(tmp_path)
    assert [{k: v for k, v in g.items() if k != "time"} for g in got[:3]] == RECORDS[:3]
    assert got[3] == RECORDS[3]  # a record's own time is kept
    times = [g["time"] for g in got[:3]]
    assert all(isinstance(t, float) for t in times)
    assert times == sorted(times) and abs(times[0] - time.time()) < 60
    # appended: a second writer (a resumed run) adds to the same file
    write_all(["jsonl"], tmp_path, RECORDS[:1])
    assert len(read_metrics(tmp_path)) == 5


def test_jsonl_writer_casts_numpy_scalars(tmp_path):
    w = logwriters.WRITERS["jsonl"](tmp_path)
    w.write({"event": "log", "step": np.int32(3), "loss": np.float32(0.5), "time": T0})
    line = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(line) == {"event": "log", "step": 3, "loss": 0.5, "time": T0}
    with pytest.raises(TypeError, match="ndarray is not JSON serialisable"):
        w.write({"event": "log", "vec": np.zeros(2)})


@pytest.mark.parametrize(
    "make_bad", [lambda run: None, lambda run: (run / "metrics.jsonl").mkdir(parents=True)]
)
def test_jsonl_write_failure_names_the_file(tmp_path, make_bad):
    run = tmp_path / "run"  # absent: no directory to append in; or metrics.jsonl a directory
    make_bad(run)
    w = logwriters.open_writers(["jsonl"], run)
    with pytest.raises(OSError) as e:
        w.write(RECORDS[0])
    assert e.value.filename == str(run / "metrics.jsonl") and e.value.strerror


# --------------------------------------------------------------------------------------------
# tensorboard


def test_tensorboard_writer_round_trip(tmp_path):
    write_all(["tensorboard"], tmp_path)
    got = read_tensorboard(tmp_path)
    assert sorted(got) == sorted(SCALARS)
    for tag, want in SCALARS.items():
        steps = [e.step for e in got[tag]]
        values = [e.value for e in got[tag]]
        assert steps == [s for s, _ in want], tag
        np.testing.assert_allclose(values, [v for _, v in want], rtol=1e-6, err_msg=tag)
    assert {e.wall_time for e in got["end/wall_s"]} == {T0}  # the record's time
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "record, scalars, step",
    [
        ({"event": "log", "step": 5, "loss": 1.0, "time": T0}, [("log/loss", 1.0)], 5),
        ({"event": "epoch", "words_total": 9, "loss": 2}, [("epoch/loss", 2.0)], 9),
        ({"event": "end", "phases_s": {"a": {"b": 1}}}, [("end/phases_s/a/b", 1.0)], None),
        ({"event": "log", "step": 1, "x": None, "y": "s", "z": [1], "ok": False}, [], 1),
        ({"loss": np.float32(0.5), "step": np.int64(7)}, [("metrics/loss", 0.5)], 7),
    ],
)
def test_tensorboard_scalars(record, scalars, step):
    assert logwriters.tensorboard_scalars(record) == (scalars, step)


def test_tensorboard_writer_names_the_extra_when_tensorboardx_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install 'sgjax\[tensorboard\]'"):
        logwriters.open_writers(["jsonl", "tensorboard"], tmp_path)
    assert not (tmp_path / "tensorboard").exists()


# --------------------------------------------------------------------------------------------
# open_writers


def test_open_writers_fans_out_with_one_time(tmp_path):
    write_all(["jsonl", "tensorboard", "jsonl"], tmp_path)  # a repeated kind writes once
    lines = read_metrics(tmp_path)
    assert len(lines) == len(RECORDS)
    got = read_tensorboard(tmp_path)
    assert [e.step for e in got["log/loss"]] == [10, 20]
    # the same stamp in both: TensorBoard's wall time is metrics.jsonl's "time"
    np.testing.assert_allclose(
        [e.wall_time for e in got["log/loss"]], [r["time"] for r in lines[:2]], rtol=0, atol=1e-6
    )


def test_open_no_writers_writes_nothing(tmp_path):
    write_all([], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_writer_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown metrics writer 'csv'; valid: jsonl, tensorboard"):
        logwriters.open_writers(["jsonl", "csv"], tmp_path)
    assert list(tmp_path.iterdir()) == []


#: A writer outside the registry, found by its dotted path.
SEEN: list[dict] = []


def list_writer(run_dir: Path) -> logwriters.Writer:
    return logwriters.Writer(write=SEEN.append, close=lambda: SEEN.append({"closed": run_dir}))


def test_a_writer_by_dotted_path(tmp_path):
    SEEN.clear()
    write_all(["test_logwriters.list_writer"], tmp_path, RECORDS[:2])
    assert [r["step"] for r in SEEN[:2]] == [10, 20] and all("time" in r for r in SEEN[:2])
    assert SEEN[2] == {"closed": tmp_path}


def test_close_closes_every_writer_and_raises_the_first_failure(tmp_path, monkeypatch):
    closed = []

    def failing(name):
        def close():
            closed.append(name)
            raise OSError(f"{name} failed")

        return lambda run_dir: logwriters.Writer(write=lambda r: None, close=close)

    monkeypatch.setitem(logwriters.WRITERS, "a", failing("a"))
    monkeypatch.setitem(logwriters.WRITERS, "b", failing("b"))
    w = logwriters.open_writers(["a", "b"], tmp_path)
    with pytest.raises(OSError, match="a failed"):
        w.close()
    assert closed == ["a", "b"]


def test_a_failed_open_closes_the_writers_already_open(tmp_path, monkeypatch):
    closed = []

    def fails_to_open(run_dir):
        raise OSError("cannot open")

    monkeypatch.setitem(
        logwriters.WRITERS,
        "ok",
        lambda run_dir: logwriters.Writer(write=lambda r: None, close=lambda: closed.append(1)),
    )
    monkeypatch.setitem(logwriters.WRITERS, "bad", fails_to_open)
    with pytest.raises(OSError, match="cannot open"):
        logwriters.open_writers(["ok", "bad"], tmp_path)
    assert closed == [1]
