"""`sgjax report RUN1 RUN2 ... --out DIR`: several runs' curves overlaid, on fake runs whose
metrics.jsonl the jsonl writer writes (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sgjax import report
from sgjax.cli import main as cli_main
from sgjax.logwriters import open_writers

OVERLAYS = ["loss.png", "speed.png", "scores.png", "loss-time.png"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000.0


def fake_records(scale: float, speed: float, t0: float = T0) -> list[dict]:
    """Two epochs of 3 log records each; the loss scaled by ``scale``, 2 s between logs."""
    records, step = [], 0
    for epoch in (1, 2):
        for _ in range(3):
            step += 10
            records.append(
                {
                    "event": "log",
                    "epoch": epoch,
                    "step": step,
                    "lr": 0.025 * (1 - step / 70),
                    "loss": scale * 3.0 / step,
                    "words_total": 100 * step,
                    "time": t0 + 2.0 * (step // 10),
                }
            )
        records.append(
            {
                "event": "epoch",
                "epoch": epoch,
                "step": step,
                "loss": scale / epoch,
                "lr": 0.025 * (1 - step / 70),
                "words_per_s": speed * epoch,
                "analogy": 0.1 * epoch / scale,
                "wordsim_spearman": None if epoch == 1 else 0.3 / scale,
                "words_total": 100 * step,
            }
        )
    records.append({"event": "end", "words_total": 6000, "phases_s": {"train": 12.0}})
    return records


def make_run(run: Path, records: list[dict]) -> Path:
    run.mkdir(parents=True)
    w = open_writers(["jsonl"], run)
    for r in records:
        w.write(r)
    w.close()
    return run


@pytest.fixture
def two_runs(tmp_path) -> list[Path]:
    return [
        make_run(tmp_path / "sgd", fake_records(1.0, 1000.0)),
        make_run(tmp_path / "adam", fake_records(2.0, 800.0)),
    ]


# --------------------------------------------------------------------------------------------
# The command.


def test_report_overlays_runs(two_runs, tmp_path, capsys):
    out = tmp_path / "compare"
    assert cli_main(["report", *map(str, two_runs), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(out / n) for n in OVERLAYS]
    assert captured.err == ""
    for name in OVERLAYS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
    for run in two_runs:  # the runs themselves are left alone
        assert not (run / "figures").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{sgd}", "{adam}"], "comparing 2 runs needs --out FIGDIR"),
        (["{sgd}", "{tmp}/nowhere", "--out", "{tmp}/o"], "nowhere: no such run directory"),
        (["{sgd}", "{bad}", "--out", "{tmp}/o"], "bad/metrics.jsonl: line 1: not valid JSON"),
        (["{tmp}/empty", "{tmp}/empty2", "--out", "{tmp}/o"], "nothing to plot in"),
    ],
)
def test_report_overlay_errors(two_runs, tmp_path, capsys, argv, message):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text("{oops\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty2").mkdir()
    names = {"sgd": two_runs[0], "adam": two_runs[1], "tmp": tmp_path, "bad": tmp_path / "bad"}
    assert cli_main(["report", *(a.format(**names) for a in argv)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line = captured.err.splitlines()[-1]  # after any notes
    assert line.startswith("sgjax report: error: ") and message in line
    assert not (tmp_path / "o").exists()


def test_a_run_without_some_data_is_noted(two_runs, tmp_path, capsys):
    logs_only = [
        {k: v for k, v in r.items() if k != "time"}
        for r in fake_records(3.0, 1.0)
        if r["event"] == "log"
    ]
    bare = make_run(tmp_path / "bare", [])
    (bare / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logs_only))
    out = tmp_path / "o"
    assert cli_main(["report", str(two_runs[0]), str(bare), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(out / n) for n in OVERLAYS]
    notes = captured.err.splitlines()
    assert notes == [
        f"sgjax report: {name}: no data from bare" for name in OVERLAYS[1:]
    ]  # loss.png has both


def test_one_run_keeps_the_single_run_report(two_runs, capsys):
    assert cli_main(["report", str(two_runs[0])]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [str(two_runs[0] / "figures" / n) for n in OVERLAYS[:3]]


# --------------------------------------------------------------------------------------------
# The data plotted.


def expected(records: list[dict], panel: str) -> tuple[list, list]:
    """The points a panel should hold for one run, computed here from the records."""
    logs = [r for r in records if r["event"] == "log"]
    epochs = [r for r in records if r["event"] == "epoch"]
    if panel in ("loss", "lr"):
        return [r["words_total"] for r in logs], [r[panel] for r in logs]
    if panel == "loss_time":
        return [r["time"] - T0 - 2.0 for r in logs], [r["loss"] for r in logs]
    rows = [r for r in epochs if r.get(panel) is not None]
    return [r["epoch"] for r in rows], [r[panel] for r in rows]


@pytest.mark.parametrize("panel", list(report.PANELS))
def test_overlay_series(two_runs, panel):
    runs = [(p.name, report.read_metrics(p)) for p in two_runs]
    series = report.overlay_series(runs)[panel]
    assert [s.label for s in series] == ["sgd", "adam"]
    for s, (name, records) in zip(series, runs, strict=True):
        x, y = expected(records, panel)
        np.testing.assert_allclose(s.x, x, err_msg=name)
        np.testing.assert_allclose(s.y, y, err_msg=name)


def test_overlay_series_falls_back_to_epoch_records_and_skips_absent_data():
    epochs_only = [r for r in fake_records(1.0, 5.0) if r["event"] != "log"]
    series = report.overlay_series([("a", epochs_only), ("b", [])])
    (loss,) = series["loss"]
    np.testing.assert_array_equal(loss.x, [3000, 6000])
    np.testing.assert_array_equal(loss.y, [1.0, 0.5])
    assert series["loss_time"] == []  # no record with a time
    (wordsim,) = series["wordsim_spearman"]  # None at epoch 1: a point left out
    np.testing.assert_array_equal(wordsim.x, [2])
    assert all(s.label == "a" for v in series.values() for s in v)


def test_overlay_figure_draws_a_line_per_run_in_its_colour(two_runs):
    runs = [(p.name, report.read_metrics(p)) for p in two_runs]
    series = report.overlay_series(runs)
    fig = report.overlay_figure(series, ("loss", "lr"), "words processed", "t")
    loss_ax, lr_ax = fig.axes
    for ax, panel in ((loss_ax, "loss"), (lr_ax, "lr")):
        assert [line.get_label() for line in ax.lines] == ["sgd", "adam"]
        for line, s in zip(ax.lines, series[panel], strict=True):
            np.testing.assert_array_equal(line.get_xdata(), s.x)
            np.testing.assert_array_equal(line.get_ydata(), s.y)
    assert [line.get_color() for line in loss_ax.lines] == [
        line.get_color() for line in lr_ax.lines
    ]
    assert loss_ax.lines[0].get_color() != loss_ax.lines[1].get_color()
    # a panel without data is left out; no data at all: None
    only_adam = {"loss": series["loss"][1:], "lr": []}
    fig = report.overlay_figure(only_adam, ("loss", "lr"), "words processed", "t")
    assert len(fig.axes) == 1 and fig.axes[0].lines[0].get_color() == "C0"
    assert report.overlay_figure({"loss": [], "lr": []}, ("loss", "lr"), "x", "t") is None


@pytest.mark.parametrize(
    "paths, labels",
    [
        (["runs/sgd", "runs/adam"], ["sgd", "adam"]),
        (["a/run", "b/run", "c/other"], ["a/run", "b/run", "other"]),
        (["x/sgd/"], ["sgd"]),
    ],
)
def test_run_labels(paths, labels):
    assert report.run_labels(paths) == labels
