"""`sgjax report` and sgjax.report: the figures of a run, their data, and the learning-dynamics
script. A tiny run (toy corpus of a few thousand tokens, two epochs) is trained once."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from sgjax import report
from sgjax.cli import main as cli_main
from sgjax.config import load_config
from sgjax.experiment import train
from sgjax.vectors import WordVectors, read_word2vec

ROOT = Path(__file__).resolve().parents[1]
CAPITALS = [("athens", "greece"), ("berlin", "germany"), ("paris", "france"), ("rome", "italy")]
FILLER = "the a of in tiger cat book paper computer keyboard car plane".split()
FIGURES = ["loss.png", "speed.png", "scores.png", "pairs-capital-common-countries.png"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-epoch run with a metrics line every call and per-epoch evaluation."""
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(300):
        city, country = CAPITALS[rng.integers(len(CAPITALS))]
        lines.append(
            " ".join([city, "is", "the", "capital", "of", country, *rng.choice(FILLER, 3)])
        )
    base = tmp_path_factory.mktemp("report")
    (base / "toy.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        [
            f"data.corpus={base / 'toy.txt'}",
            "data.min_count=1",
            "data.sample=0",
            "train.epochs=2",
            "train.batch_size=64",
            "train.steps_per_call=4",
            "train.log_every_steps=1",
            "eval.every_epoch=true",
        ],
    )
    train(cfg, base / "run", progress=False)
    return base / "run"


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("figures"))
    return dest


# --------------------------------------------------------------------------------------------
# The command.


def test_report_writes_every_figure(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    assert cli_main(["report", str(run)]) == 0
    captured = capsys.readouterr()
    printed = captured.out.splitlines()
    assert printed == [str(run / "figures" / name) for name in FIGURES]
    for p in map(Path, printed):
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, p
    assert "skipped" not in captured.err


def test_report_out_directory(finished, tmp_path, capsys):
    figdir = tmp_path / "figs" / "nested"
    assert cli_main(["report", str(finished), "--out", str(figdir)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(figdir / n) for n in FIGURES]


def test_report_missing_run_directory(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert cli_main(["report", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and str(missing) in captured.err


def test_report_without_matplotlib(finished, tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'sgjax\[plot\]'"):
        report.write_report(finished, tmp_path / "figs")
    assert cli_main(["report", str(finished), "--out", str(tmp_path / "figs")]) == 2
    captured = capsys.readouterr()
    assert "pip install 'sgjax[plot]'" in captured.err and captured.out == ""
    assert not (tmp_path / "figs").exists()


def test_unfinished_run_takes_vectors_from_its_checkpoint(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    want = read_word2vec(run / "vectors.bin").matrix
    (run / "vectors.bin").unlink()
    (run / "vectors.txt").unlink()
    vectors, source = report.run_vectors(run)
    assert source.startswith("checkpoint at step")
    np.testing.assert_array_equal(vectors.matrix, want)
    assert cli_main(["report", str(run)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(FIGURES)


def test_figures_without_data_are_skipped_with_a_note(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    records = [
        {"event": "log", "epoch": 1, "step": s, "lr": 0.1 / s, "loss": 3.0 / s, "words_total": s}
        for s in (10, 20, 30)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert cli_main(["report", str(run)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(run / "figures" / "loss.png")]
    for name in FIGURES[1:]:
        assert f"{name}: skipped" in captured.err
    # nothing at all to draw: exit 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["report", str(empty)]) == 2
    assert "nothing to plot" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The figures' data.


def test_loss_figure_prefers_log_records_and_falls_back_to_epochs(finished):
    records = report.read_metrics(finished)
    logs = report.events(records, "log")
    epochs = report.events(records, "epoch")
    assert len(logs) > len(epochs) == 2
    fig = report.loss_figure(records)
    loss_line = fig.axes[0].lines[0]
    np.testing.assert_array_equal(loss_line.get_xdata(), [r["words_total"] for r in logs])
    np.testing.assert_array_equal(loss_line.get_ydata(), [r["loss"] for r in logs])
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_ydata(), [r["lr"] for r in logs])

    fig = report.loss_figure(epochs)
    np.testing.assert_array_equal(
        fig.axes[0].lines[0].get_xdata(), [r["words_total"] for r in epochs]
    )
    assert report.loss_figure([]) is None


def test_speed_and_scores_figures(finished):
    epochs = report.events(report.read_metrics(finished), "epoch")
    bars = report.speed_figure(epochs).axes[0].patches
    np.testing.assert_allclose([b.get_height() for b in bars], [r["words_per_s"] for r in epochs])
    ax = report.scores_figure(epochs).axes[0]
    got = {line.get_label().split(" ")[0]: line.get_ydata() for line in ax.lines}
    np.testing.assert_array_equal(got["analogy"], [r["analogy"] for r in epochs])
    np.testing.assert_array_equal(got["WordSim-353"], [r["wordsim_spearman"] for r in epochs])
    no_scores = [{k: v for k, v in r.items() if not k.startswith(("analogy", "wordsim"))}
                 for r in epochs]  # fmt: skip
    assert report.scores_figure(no_scores) is None
    assert report.speed_figure(report.events(report.read_metrics(finished), "log")) is None


def test_read_metrics_skips_a_line_being_written_and_names_a_bad_one(tmp_path):
    good = json.dumps({"event": "epoch", "epoch": 1})
    (tmp_path / "metrics.jsonl").write_text(good + "\n" + '{"event": "lo')
    assert report.read_metrics(tmp_path) == [{"event": "epoch", "epoch": 1}]
    (tmp_path / "metrics.jsonl").write_text(good + "\nnot json\n" + good + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2: not valid JSON"):
        report.read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").unlink()
    assert report.read_metrics(tmp_path) == []


def test_pca_2d_recovers_planar_data():
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(40, 2)) * [3.0, 1.0]
    Q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    X = plane @ Q[:2] + rng.normal(size=7)  # a rotated, shifted plane in 7-D
    Y, explained = report.pca_2d(X)
    d = lambda A: np.linalg.norm(A[:, None] - A[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(Y), d(plane), atol=1e-9)  # distances kept exactly
    np.testing.assert_allclose(explained.sum(), 1.0)
    assert explained[0] > explained[1] > 0
    np.testing.assert_allclose(Y.mean(0), 0, atol=1e-12)


def test_analogy_pairs():
    pairs = report.analogy_pairs("capital-common-countries")
    assert len(pairs) == 23 and pairs[0] == ("Athens", "Greece")
    assert len(set(pairs)) == len(pairs)
    assert ("king", "queen") in report.analogy_pairs("family")
    with pytest.raises(ValueError, match="no section 'nope'.*capital-world"):
        report.analogy_pairs("nope")


def test_pairs_figure_looks_words_up_case_insensitively_and_skips_oov():
    rng = np.random.default_rng(1)
    words = ["athens", "greece", "berlin", "germany", "Paris", "zzz"]
    kv = WordVectors.from_params(words, rng.normal(size=(len(words), 5)))
    pairs = [("Athens", "Greece"), ("Berlin", "Germany"), ("Paris", "France")]
    ax = report.pairs_figure(kv, pairs).axes[0]
    assert len(ax.lines) == 2  # one line per pair found; Paris-France has France missing
    assert sorted(t.get_text() for t in ax.texts) == ["Athens", "Berlin", "Germany", "Greece"]
    Y, _ = report.pca_2d(kv.unit[[0, 2, 1, 3]])
    np.testing.assert_allclose(ax.lines[0].get_xydata(), Y[[0, 2]])
    assert report.pairs_figure(kv, pairs[:1]) is None


# --------------------------------------------------------------------------------------------
# scripts/learning_dynamics.py


@pytest.mark.slow  # ~12 s on 2 busy cores: a few dozen small XLA compilations and the plot
def test_learning_dynamics_script(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "learning_dynamics", ROOT / "scripts" / "learning_dynamics.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    recorded = []
    simulate = mod.simulate
    monkeypatch.setattr(
        mod, "simulate", lambda *a, **k: recorded.append(simulate(*a, **k)) or recorded[-1]
    )
    out = tmp_path / "ld.png"
    assert mod.main(["--out", str(out), "--steps", "150", "--seed", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000

    (rec,) = recorded
    assert rec["v_w"].shape == (151, 10) and rec["W_out"].shape[0] == 151
    assert not np.any(rec["W_out"][0])  # W' starts at zero (PAPER.md)
    assert rec["contexts"] and rec["negatives"]
    assert not set(rec["contexts"]) & set(rec["negatives"])

    def prob(t, js):  # mean sigma(v'_j . v_w) after t updates
        return float(mod.sigmoid(rec["W_out"][t, js] @ rec["v_w"][t]).mean())

    assert prob(0, rec["contexts"]) == prob(0, rec["negatives"]) == 0.5
    # SGD turns v_w towards its contexts' v' and away from its negatives' v'
    assert prob(150, rec["contexts"]) > 0.6
    assert prob(150, rec["negatives"]) < 0.45
