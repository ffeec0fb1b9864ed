"""Figures of a run (``sgjax report``): its training curves and a 2-D view of its vectors;
the curves of several runs overlaid.

Pure functions over a run directory's data (:mod:`sgjax.experiment` describes the layout):
:func:`read_metrics` parses ``metrics.jsonl``; :func:`loss_figure`, :func:`speed_figure`,
:func:`scores_figure` and :func:`pairs_figure` each build one matplotlib ``Figure`` from
data (or return None when the data for it are absent); :func:`write_report` writes them all
as PNG files. Several runs are compared by :func:`write_overlay`: their curves overlaid, one
line per run (:func:`overlay_series` gives the lines' data, :func:`overlay_figure` draws).
The figures are ``matplotlib.figure.Figure`` objects drawn by the Agg backend: no pyplot, no
global backend switch, so notebooks and GUIs calling these functions keep their own backend.
matplotlib is an optional dependency (``pip install 'sgjax[plot]'``).

The word-group view projects word pairs (by default the countries and capitals of
questions-words' ``capital-common-countries`` section) onto the first two principal
components of their unit vectors (numpy SVD) and draws a line joining each country and its
capital: parallel lines of similar length are the constant offsets that make 3CosAdd work
(Mikolov et al. 2013, Figure 2).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from sgjax.evaluate import questions_words_path
from sgjax.vectors import WordVectors, read_word2vec

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

PathLike = str | os.PathLike[str]
PLOT_HINT = "pip install 'sgjax[plot]'"
DEFAULT_SECTION = "capital-common-countries"
DPI = 120


def _new_figure(**kwargs: Any) -> Figure:
    """A Figure drawn by Agg; a clear ImportError naming the extra if matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            f"the figures need matplotlib, which is not installed: {PLOT_HINT}"
        ) from e
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


# --------------------------------------------------------------------------------------------
# Data.


def read_metrics(run_dir: PathLike) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl`` in file order ([] if the file is absent).

    An unterminated last line (a run writing it right now) is ignored; any other line that
    is not a JSON object raises ValueError naming the file and line.
    """
    path = Path(run_dir) / "metrics.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):  # no newline after it: still being written
                continue
            raise ValueError(f"{path}: line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: line {n}: expected a JSON object")
        records.append(rec)
    return records


def events(records: Sequence[dict], event: str) -> list[dict]:
    """The records of one ``"event"`` kind (``"log"`` or ``"epoch"``)."""
    return [r for r in records if r.get("event") == event]


def _num(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else math.nan


def analogy_pairs(
    section: str = DEFAULT_SECTION, path: PathLike | None = None
) -> list[tuple[str, str]]:
    """Distinct ``(a, b)`` word pairs of one section of a questions-words file (each question
    ``a b c d`` gives the pairs ``(a, b)`` and ``(c, d)``), in order of first appearance.
    Raises ValueError if the section is not in the file."""
    path = Path(path) if path is not None else questions_words_path()
    pairs: dict[tuple[str, str], None] = {}
    sections: list[str] = []
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(":"):
                current = line[1:].strip()
                sections.append(current)
                continue
            w = line.split()
            if current == section and len(w) == 4:
                pairs.setdefault((w[0], w[1]))
                pairs.setdefault((w[2], w[3]))
    if section not in sections:
        raise ValueError(f"{path}: no section {section!r}; sections: {', '.join(sections)}")
    return list(pairs)


def case_insensitive_index(vectors: WordVectors) -> dict[str, int]:
    """Upper-cased word -> row of its most frequent (first) spelling, as the evaluation's
    case-insensitive lookup (questions-words is capitalised, corpora often lower-case)."""
    index: dict[str, int] = {}
    for i, w in enumerate(vectors.words):
        index.setdefault(w.upper(), i)
    return index


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project the rows of ``X`` (n, N) onto their first two principal components (SVD of the
    centred data). Returns ``(Y (n, 2), explained)``, ``explained`` the fraction of the
    variance each component holds. Fewer than two non-trivial components give zeros."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"expected a non-empty (n, N) array, got shape {X.shape}")
    Xc = X - X.mean(axis=0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    k = min(2, S.shape[0])
    Y = np.zeros((X.shape[0], 2))
    Y[:, :k] = U[:, :k] * S[:k]
    total = float((S**2).sum())
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = S[:k] ** 2 / total
    return Y, explained


def run_vectors(run_dir: PathLike) -> tuple[WordVectors, str]:
    """The input vectors of a run and where they came from: ``vectors.bin`` (or
    ``vectors.txt``) of a finished run, else the newest checkpoint (an unfinished run)."""
    run = Path(run_dir)
    for name, binary in (("vectors.bin", True), ("vectors.txt", False)):
        if (run / name).is_file():
            return read_word2vec(run / name, binary), name
    from sgjax.checkpoint import load_run_state

    vocab, params, meta = load_run_state(run)
    where = f"checkpoint at step {meta.get('step')}"
    return WordVectors.from_params(vocab.words, params["W"]), where


# --------------------------------------------------------------------------------------------
# Figures.


def _epoch_marks(ax: Any, records: Sequence[dict]) -> None:
    for r in events(records, "epoch")[:-1]:
        x = _num(r.get("words_total"))
        if math.isfinite(x):
            ax.axvline(x, color="0.8", linestyle=":", linewidth=1, zorder=0)


def loss_figure(records: Sequence[dict], title: str = "") -> Figure | None:
    """Loss (mean E per output prediction) and learning rate against words processed, from
    the ``"log"`` records (every ``train.log_every_steps`` steps), else the ``"epoch"`` ones;
    dotted lines mark epoch ends. None if there is no such record."""
    kind = "log" if events(records, "log") else "epoch"
    rows = [r for r in events(records, kind) if "words_total" in r]
    if not rows:
        return None
    x = np.array([_num(r["words_total"]) for r in rows])
    loss = np.array([_num(r.get("loss")) for r in rows])
    lr = np.array([_num(r.get("lr")) for r in rows])
    fig = _new_figure(figsize=(8, 6), dpi=DPI, layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    style = {"marker": "o", "markersize": 3} if len(rows) < 50 else {}
    ax1.plot(x, loss, color="tab:blue", linewidth=1.2, **style)
    ax1.set_ylabel("loss E per prediction")
    n = len(rows)
    hint = "; train.log_every_steps > 0 logs more" if kind == "epoch" else ""
    ax1.set_title(
        (title + ": " if title else "")
        + f"training loss ({kind} records, {n} point{'s' if n != 1 else ''}{hint})"
    )
    ax2.plot(x, lr, color="tab:orange", linewidth=1.2, **style)
    ax2.set_ylabel("learning rate")
    ax2.set_xlabel("words processed")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        _epoch_marks(ax, records)
    return fig


def speed_figure(records: Sequence[dict], title: str = "") -> Figure | None:
    """Training throughput (corpus words per second) of each epoch, from the ``"epoch"``
    records; the first epoch includes compilation. None if no record has ``words_per_s``."""
    rows = [r for r in events(records, "epoch") if "words_per_s" in r]
    if not rows:
        return None
    epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(rows)]
    speed = np.array([_num(r["words_per_s"]) for r in rows])
    fig = _new_figure(figsize=(7, 4), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    bars = ax.bar([str(e) for e in epochs], speed, color="tab:green")
    ax.bar_label(bars, labels=[f"{s:,.0f}" for s in speed], fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("words / s")
    ax.set_title((title + ": " if title else "") + "training speed (epoch 1 includes compiling)")
    ax.grid(True, axis="y", alpha=0.3)
    return fig


SCORES = {"analogy": "analogy accuracy (3CosAdd)", "wordsim_spearman": "WordSim-353 Spearman"}


def scores_figure(records: Sequence[dict], title: str = "") -> Figure | None:
    """Evaluation scores at the end of each epoch (``analogy``, ``wordsim_spearman`` of the
    ``"epoch"`` records). None if no epoch record holds a score."""
    rows = events(records, "epoch")
    present = [k for k in SCORES if any(k in r for r in rows)]
    if not present:
        return None
    fig = _new_figure(figsize=(7, 4), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for key in present:
        pts = [(int(r.get("epoch", i + 1)), _num(r.get(key))) for i, r in enumerate(rows)]
        label = SCORES[key]
        if key == "analogy":
            n = [r.get("analogy_evaluated") for r in rows if "analogy_evaluated" in r]
            label += f" on {n[-1]} questions" if n else ""
        ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("score")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title((title + ": " if title else "") + "evaluation after each epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def pairs_figure(
    vectors: WordVectors,
    pairs: Sequence[tuple[str, str]],
    title: str = "",
    max_pairs: int = 30,
) -> Figure | None:
    """2-D PCA of the unit vectors of word pairs ``(a, b)`` with a line joining each pair
    (e.g. capital and country). Words are looked up case-insensitively; pairs with a
    word out of the vocabulary are skipped, and the first ``max_pairs`` of the rest are
    drawn. None if fewer than two pairs remain."""
    index = case_insensitive_index(vectors)
    found = [
        (a, b, index[a.upper()], index[b.upper()])
        for a, b in pairs
        if a.upper() in index and b.upper() in index
    ][:max_pairs]
    if len(found) < 2:
        return None
    rows = [i for _, _, i, _ in found] + [j for _, _, _, j in found]
    Y, explained = pca_2d(vectors.unit[rows])
    k = len(found)
    fig = _new_figure(figsize=(8, 7), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for t in range(k):
        ax.plot(*Y[[t, k + t]].T, color="0.6", linewidth=0.8, zorder=1)
    a0, b0 = found[0][:2]
    ax.scatter(*Y[:k].T, color="tab:blue", s=18, zorder=2, label=f"a (as {a0})")
    ax.scatter(*Y[k:].T, color="tab:red", s=18, zorder=2, label=f"b (as {b0})")
    for t, (a, b, _, _) in enumerate(found):
        ax.annotate(
            a, Y[t], fontsize=8, color="tab:blue", xytext=(3, 2), textcoords="offset points"
        )
        ax.annotate(
            b, Y[k + t], fontsize=8, color="tab:red", xytext=(3, 2), textcoords="offset points"
        )
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of the variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of the variance)")
    skipped = len(pairs) - k
    ax.set_title(
        (title + "\n" if title else "")
        + f"PCA of {k} pairs' unit vectors, a line joins each pair"
        + (f" ({skipped} more out of the vocabulary or over {max_pairs})" if skipped else ""),
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# The whole report.


def write_report(
    run_dir: PathLike,
    out_dir: PathLike | None = None,
    *,
    section: str = DEFAULT_SECTION,
    analogies: PathLike | None = None,
) -> tuple[list[Path], list[str]]:
    """Write the run's figures as PNG files into ``out_dir`` (default ``run_dir/figures``):
    ``loss.png``, ``speed.png``, ``scores.png`` and ``pairs-SECTION.png`` (word pairs of
    ``section`` of the ``analogies`` file, default the shipped questions-words).

    Returns ``(paths written, notes)``; a note says why a figure was left out (its data are
    absent). Raises FileNotFoundError if ``run_dir`` is not a directory, ImportError (with
    the install hint) if matplotlib is missing.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    _new_figure()  # fail early, before reading anything, if matplotlib is missing
    out = Path(out_dir) if out_dir is not None else run / "figures"
    records = read_metrics(run)
    name = run.resolve().name
    figures: list[tuple[str, Figure | None, str]] = [
        ("loss.png", loss_figure(records, name), "no log or epoch records in metrics.jsonl"),
        ("speed.png", speed_figure(records, name), "no epoch records with words_per_s"),
        ("scores.png", scores_figure(records, name), "no epoch records with evaluation scores"),
    ]
    pairs_name = f"pairs-{section}.png"
    try:
        vectors, source = run_vectors(run)
    except (OSError, ValueError) as e:
        figures.append((pairs_name, None, f"no vectors ({e})"))
    else:
        pairs = analogy_pairs(section, analogies)
        fig = pairs_figure(vectors, pairs, f"{name}: {section} pairs, vectors from {source}")
        figures.append((pairs_name, fig, f"fewer than 2 pairs of {section!r} in the vocabulary"))
    written, notes = [], []
    for filename, fig, why in figures:
        if fig is None:
            notes.append(f"{filename}: skipped, {why}")
            continue
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / filename, format="png")
        written.append(out / filename)
    return written, notes


# --------------------------------------------------------------------------------------------
# Several runs overlaid (e.g. one per optimizer).


class Series(NamedTuple):
    """One run's line in an overlay panel."""

    label: str
    x: np.ndarray
    y: np.ndarray


def run_labels(run_dirs: Sequence[PathLike]) -> list[str]:
    """Each run's directory name, or the path as given where two runs share a name."""
    names = [Path(r).resolve().name for r in run_dirs]
    return [n if names.count(n) == 1 else str(r) for n, r in zip(names, run_dirs, strict=True)]


def _words(r: dict) -> float:
    return _num(r.get("words_total"))


def _epoch(r: dict) -> float:
    return _num(r.get("epoch"))


def _series(
    label: str, rows: Sequence[dict], x: Callable[[dict], float], key: str
) -> Series | None:
    """The points ``(x(row), row[key])`` of the rows with a finite x and a non-null y."""
    pts = [(x(r), _num(r[key])) for r in rows if r.get(key) is not None and math.isfinite(x(r))]
    return Series(label, *(np.array(v) for v in zip(*pts, strict=True))) if pts else None


def overlay_series(runs: Sequence[tuple[str, Sequence[dict]]]) -> dict[str, list[Series]]:
    """Panel -> one Series per ``(label, records)`` run that has its data, in run order:
    ``loss`` and ``lr`` against words processed (``"log"`` records, else ``"epoch"`` ones,
    as :func:`loss_figure`), ``loss_time`` against seconds since the run's first record
    with a ``"time"``, and ``words_per_s``, ``analogy``, ``wordsim_spearman`` per epoch."""
    out: dict[str, list[Series]] = {p: [] for p in PANELS}
    for label, records in runs:
        losses = events(records, "log") or events(records, "epoch")
        epochs = events(records, "epoch")
        t0 = min((_num(r.get("time")) for r in records if "time" in r), default=math.nan)

        def elapsed(r: dict, t0: float = t0) -> float:
            return _num(r.get("time")) - t0

        for panel, rows, x, key in (
            ("loss", losses, _words, "loss"),
            ("lr", losses, _words, "lr"),
            ("loss_time", losses, elapsed, "loss"),
            ("words_per_s", epochs, _epoch, "words_per_s"),
            ("analogy", epochs, _epoch, "analogy"),
            ("wordsim_spearman", epochs, _epoch, "wordsim_spearman"),
        ):
            s = _series(label, rows, x, key)
            if s is not None:
                out[panel].append(s)
    return out


#: Overlay panel -> its y axis' label.
PANELS = {
    "loss": "loss E per prediction",
    "lr": "learning rate",
    "loss_time": "loss E per prediction",
    "words_per_s": "words / s",
    **SCORES,
}
#: Overlay figure -> (its panels, one axes each sharing the x axis; x label; title).
OVERLAYS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "loss.png": (("loss", "lr"), "words processed", "training loss and learning rate"),
    "speed.png": (("words_per_s",), "epoch", "training speed (epoch 1 includes compiling)"),
    "scores.png": (("analogy", "wordsim_spearman"), "epoch", "evaluation after each epoch"),
    "loss-time.png": (
        ("loss_time",),
        "wall-clock seconds since the first record",
        "training loss against time",
    ),
}


def overlay_figure(
    series: dict[str, list[Series]], panels: Sequence[str], xlabel: str, title: str
) -> Figure | None:
    """One axes per panel holding data, one line per run (a run keeps its colour across
    panels). None if no panel holds data."""
    present = [p for p in panels if series.get(p)]
    if not present:
        return None
    labels = list(dict.fromkeys(s.label for p in present for s in series[p]))
    fig = _new_figure(figsize=(8, 3 + 2.5 * len(present)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(present), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, present, strict=True):
        for s in series[panel]:
            style = {"marker": "o", "markersize": 3} if len(s.x) < 50 else {}
            color = f"C{labels.index(s.label) % 10}"
            ax.plot(s.x, s.y, color=color, linewidth=1.2, label=s.label, **style)
        ax.set_ylabel(PANELS[panel])
        ax.grid(True, alpha=0.3)
    if xlabel == "epoch":
        axes[-1].xaxis.get_major_locator().set_params(integer=True)
    axes[-1].set_xlabel(xlabel)
    axes[0].legend(loc="best", fontsize=8)
    axes[0].set_title(f"{title}, {len(labels)} run{'s' if len(labels) != 1 else ''}")
    return fig


def write_overlay(run_dirs: Sequence[PathLike], out_dir: PathLike) -> tuple[list[Path], list[str]]:
    """Write the runs' curves overlaid, one line per run labelled by its directory name, as
    the PNG files of ``OVERLAYS`` into ``out_dir``. Returns ``(paths written, notes)``, a note
    for each figure skipped (no run has its data) or lacking some run's line. Raises
    FileNotFoundError naming a run that is not a directory, ValueError naming a malformed
    metrics.jsonl, ImportError (with the install hint) if matplotlib is missing."""
    runs = [Path(r) for r in run_dirs]
    for run in runs:
        if not run.is_dir():
            raise FileNotFoundError(f"{run}: no such run directory")
    _new_figure()  # fail early if matplotlib is missing
    labels = run_labels(runs)
    series = overlay_series([(n, read_metrics(r)) for n, r in zip(labels, runs, strict=True)])
    out, written, notes = Path(out_dir), [], []
    for filename, (panels, xlabel, title) in OVERLAYS.items():
        fig = overlay_figure(series, panels, xlabel, title)
        if fig is None:
            notes.append(f"{filename}: skipped, no run has data for it in metrics.jsonl")
            continue
        have = {s.label for p in panels for s in series[p]}
        if missing := [n for n in labels if n not in have]:
            notes.append(f"{filename}: no data from {', '.join(missing)}")
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / filename, format="png")
        written.append(out / filename)
    return written, notes
