"""scripts/bench_speed.py: its command lines, the timing of a process from a marker in its
output, the summary's medians, ratios and bars, and the Markdown tables; no training."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_speed.py"


@pytest.fixture(scope="module")
def bs():
    spec = importlib.util.spec_from_file_location("bench_speed", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(bs, *argv):
    return bs.build_parser().parse_args(
        ["--fasttext-binary", "/bin/ft", "--c-binary", "/bin/c", *argv]
    )


def test_command_lines(bs, tmp_path):
    args = _args(bs, "--set", "train.dtype=float32")
    corpus = ("given.txt.xz", "plain.txt")
    cmd, vec = bs.command("sgjax", "sg-hs", corpus, 2, str(tmp_path), args)
    joined = " ".join(cmd)
    assert "model.output=hierarchical" in joined and "model.architecture=skipgram" in joined
    assert "data.corpus=plain.txt" in joined and "train.seed=2" in joined  # as the anchors
    assert "train.epochs=5" in joined and "train.dtype=float32" in joined
    assert vec.endswith("vectors.bin")
    cmd, _ = bs.command("sgjax", "sg-sampled", corpus, 0, str(tmp_path), args)
    assert "model.output=sampled_softmax" in " ".join(cmd)
    cmd, _ = bs.command("sgjax", "cbow-softmax", corpus, 0, str(tmp_path), args)
    assert "train.epochs=1" in " ".join(cmd)  # --softmax-epochs
    # fastText: progress lines on; the full softmax as -loss softmax on CBOW's settings
    cmd, vec = bs.command("fasttext", "cbow-softmax", corpus, 0, str(tmp_path), args)
    assert cmd[:2] == ["/bin/ft", "cbow"] and vec.endswith(".vec")
    flags = dict(zip(cmd[2::2], cmd[3::2], strict=False))
    assert flags["-loss"] == "softmax" and flags["-verbose"] == "2" and flags["-epoch"] == "1"
    assert flags["-input"] == "plain.txt" and flags["-thread"] == "2"
    cmd, _ = bs.command("fasttext", "sg-hs", corpus, 0, str(tmp_path), args)
    assert dict(zip(cmd[2::2], cmd[3::2], strict=False))["-loss"] == "hs"
    cmd, _ = bs.command("c", "cbow-ns", corpus, 0, str(tmp_path), args)
    assert cmd[0] == "/bin/c" and "-cbow" in cmd and cmd[cmd.index("-cbow") + 1] == "1"
    cmd, _ = bs.command("gensim", "sg-ns", corpus, 1, str(tmp_path), args)
    assert cmd[0] == sys.executable and '"workers": 2' in cmd[3] and cmd[4] == "plain.txt"


def test_timed_counts_training_from_the_first_progress_line(bs):
    prog = (
        "import time,sys\n"
        "print('reading', flush=True); time.sleep(0.4)\n"
        "sys.stdout.write('\\rAlpha: 0.025 Progress: 1%'); sys.stdout.flush(); time.sleep(0.3)\n"
    )
    r = bs.timed([sys.executable, "-c", prog], b"Alpha:", None)
    assert r["returncode"] == 0 and not r["stopped"]
    assert 0.25 <= r["train_s"] < r["wall_s"] - 0.3
    # a budget stops it
    r = bs.timed([sys.executable, "-c", "import time; time.sleep(30)"], None, 0.3)
    assert r["stopped"] and r["wall_s"] < 10 and "train_s" not in r


def _rec(model, tool, repeat, wall, train, analogy, ws, **kw):
    words = 1_000_000
    return {
        "corpus": "c",
        "model": model,
        "tool": tool,
        "repeat": repeat,
        "wall_s": wall,
        "train_s": train,
        "wall_words_per_s": words / wall,
        "train_words_per_s": words / train,
        "analogy": analogy,
        "wordsim_spearman": ws,
        **kw,
    }


def test_summary_ratios_bars_and_tables(bs):
    ph = {"import": 1.0, "train": 5.0}
    records = [
        _rec("sg-ns", "sgjax", 0, 12.0, 9.0, 0.100, 0.50, cold=True, phases_s=ph),
        _rec("sg-ns", "sgjax", 1, 8.0, 6.0, 0.104, 0.50, cold=False, phases_s=ph),
        _rec("sg-ns", "sgjax", 2, 10.0, 7.0, 0.106, 0.52, cold=False, phases_s=ph),
        _rec("sg-ns", "sgjax", 3, 9.0, 7.0, 0.104, 0.50, cold=False, phases_s=ph),
        _rec("sg-ns", "gensim", 0, 12.0, 11.0, 0.103, 0.50),
        _rec("sg-ns", "fasttext", 0, 20.0, 19.0, 0.090, 0.40),
        _rec("sg-ns", "c", 0, 13.0, 12.0, 0.100, 0.45),
        _rec("cbow-ns", "sgjax", 0, 10.0, 8.0, 0.100, 0.40, cold=True, phases_s=ph),
        _rec("cbow-ns", "gensim", 0, 5.0, 4.0, 0.110, 0.41),
        {"corpus": "c", "model": "cbow-ns", "tool": "c", "repeat": 0, "error": "exit 1"},
        {"corpus": "c", "model": "sg-softmax", "tool": "sgjax", "repeat": 0, "wall_s": 100.0,
         "wall_words_per_s": 10_000.0, "cold": True},
        {"corpus": "c", "model": "sg-softmax", "tool": "fasttext", "repeat": 0, "wall_s": 60.0,
         "train_words_per_s": 100.0},
    ]  # fmt: skip
    summary = bs.summarize(records)
    sg = summary["cells"]["c"]["sg-ns"]["sgjax"]
    # warm runs give the medians of whole-process time; the cold one is kept apart
    assert sg["wall_s"] == 9.0 and sg["wall_s_cold"] == 12.0 and sg["runs"] == 4
    assert sg["train_s"] == 7.0 and sg["analogy"] == 0.104 and sg["phases_s"] == ph
    bars = summary["bars"]["c"]
    assert bars["sg-ns"]["x_gensim"] == pytest.approx(12.0 / 9.0)
    assert bars["sg-ns"]["train_x_gensim"] == pytest.approx(11.0 / 7.0)
    assert bars["sg-ns"]["ok_gensim"] and bars["sg-ns"]["ok_fasttext"] and not bars["sg-ns"]["ok_c"]
    assert bars["sg-ns"]["ok_analogy"] and bars["sg-ns"]["ok_wordsim_spearman"]
    assert bars["sg-ns"]["x_c"] == pytest.approx(13.0 / 9.0)  # under the C tool's bar of 1.5
    assert bs.verdict(bars["sg-ns"]) == "missed: c"
    # CBOW: slower than gensim and 0.01 under its analogy; the failed C run is left out
    assert not bars["cbow-ns"]["ok_gensim"] and not bars["cbow-ns"]["ok_analogy"]
    assert "c" not in summary["cells"]["c"]["cbow-ns"]
    assert bs.verdict(bars["cbow-ns"]) == "missed: gensim, analogy"
    # the full softmax: sgjax's whole-process rate over fastText's reported rate
    assert bars["sg-softmax"]["x_fasttext"] == 100.0 and bs.verdict(bars["sg-softmax"]) == "met"
    table = bs.markdown(summary)
    assert "| c | sg-ns | sgjax | 9.0 (12.0 cold) |" in table
    assert "| c | cbow-ns | **bars** | missed: gensim, analogy |" in table
    assert "| c | sg-ns | 1.00 |" in table  # the phases table: import 1.00 s


def test_arguments(bs):
    args = _args(bs)
    assert args.models == list(bs.ANCHOR_MODELS) and args.tools == list(bs.TOOLS)
    assert (args.repeats, args.anchor_repeats, args.epochs, args.softmax_epochs) == (3, 1, 5, 1)
    assert isinstance(args, argparse.Namespace)
