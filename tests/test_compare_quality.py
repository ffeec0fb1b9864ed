"""scripts/compare_quality.py: its pure helpers (arguments, command lines, summary bars,
Markdown table), no training."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_quality.py"


@pytest.fixture(scope="module")
def cq():
    spec = importlib.util.spec_from_file_location("compare_quality", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_arguments(cq):
    args = cq.build_parser().parse_args([])
    assert args.models == list(cq.MODELS) and args.tools == list(cq.TOOLS)
    assert (args.seeds, args.epochs, args.corpus, args.overrides) == (3, 5, None, [])
    args = cq.build_parser().parse_args(
        ["--corpus", "a=x.txt.xz", "--corpus", "b=y=z.txt", "--set", "k=v", "--sorted"]
    )
    assert args.corpus == [("a", "x.txt.xz"), ("b", "y=z.txt")] and args.sorted
    assert args.overrides == ["k=v"]
    with pytest.raises(argparse.ArgumentTypeError):
        cq.parse_corpus("nopath")


def test_settings(cq):
    assert cq.settings("sg-ns") == {"sg": True, "hs": False, "negative": 5, "alpha": 0.025}
    assert cq.settings("cbow-hs") == {"sg": False, "hs": True, "negative": 0, "alpha": 0.05}


def test_sgjax_command_sets_only_the_model_choice(cq):
    cmd = cq.sgjax_cmd("cbow-hs", "c.txt", 2, 1, "out", ["train.batch_size=64"])
    assert cmd[: len(cq.SGJAX) + 1] == [*cq.SGJAX, "train"]
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
    assert sets == [
        "model.architecture=cbow",
        "model.output=hierarchical",
        "data.corpus=c.txt",
        "train.seed=2",
        "train.epochs=1",
        "train.batch_size=64",
    ]
    assert cmd[-3:] == ["--quiet", "--out", "out"]


def test_anchor_commands(cq):
    kw = cq.gensim_kwargs("cbow-ns", 0, 5, 2)
    assert kw["sg"] == 0 and kw["hs"] == 0 and kw["negative"] == 5 and kw["alpha"] == 0.05
    assert kw["seed"] == 1 and kw["workers"] == 2 and kw["cbow_mean"] == 1
    c = " ".join(cq.c_cmd("w2v", "sg-hs", "t.txt", 3, "o.bin"))
    assert c == (
        "w2v -train t.txt -output o.bin -binary 1 -cbow 0 -size 100 -window 5 -negative 0"
        " -hs 1 -sample 1e-3 -min-count 5 -alpha 0.025 -iter 3 -threads 2"
    )
    ft = " ".join(cq.fasttext_cmd("ft", "cbow-ns", "t.txt", 4, 5, "o"))
    assert ft.startswith("ft cbow -input t.txt -output o -dim 100 -ws 5 -epoch 5")
    assert "-neg 5 -loss ns -t 1e-3 -lr 0.05 -minn 0 -maxn 0 -bucket 0" in ft
    assert ft.endswith("-thread 2 -seed 4 -verbose 0")


def _rec(tool: str, seed: int, analogy: float, rho: float) -> dict:
    return dict(corpus="k", model="sg-ns", tool=tool, seed=seed, analogy=analogy,
                wordsim_spearman=rho, wall_s=1.0)  # fmt: skip


def test_summary_bars_and_table(cq):
    recs = [
        _rec("sgjax", s, a, r) for s, (a, r) in enumerate([(0.10, 0.5), (0.2, 0.4), (0.3, 0.6)])
    ]
    recs += [_rec("gensim2", 0, 0.2015, 0.509), _rec("c", 0, 0.2, 0.5)]
    recs.append({"corpus": "k", "model": "sg-ns", "tool": "c", "seed": 1, "error": "x"})
    summary = cq.summarize(recs)
    sg = summary["results"]["k"]["sg-ns"]["sgjax"]
    assert sg["seeds"] == 3 and sg["analogy"] == {"median": 0.2, "min": 0.1, "max": 0.3}
    assert summary["results"]["k"]["sg-ns"]["c"]["seeds"] == 1  # the error is left out
    b = summary["bars"]["k"]["sg-ns"]
    assert b["analogy_minus_gensim2"] == pytest.approx(-0.0015)
    assert b["analogy_ok_gensim2"] and b["spearman_ok_gensim2"] and b["both_ge_c"]
    b = cq.bar({**summary["results"]["k"]["sg-ns"], "c": _spread(cq, 0.21, 0.4)})
    assert b["both_ge_c"] is False
    b = cq.bar({"sgjax": summary["results"]["k"]["sg-ns"]["sgjax"]})
    assert b["analogy_ok_gensim2"] is None and b["both_ge_c"] is None
    table = cq.markdown(summary, ["sgjax", "gensim2", "fasttext"])
    assert "| k | sg-ns | 0.2000 / 0.500 | 0.2015 / 0.509 | n/a | met |" in table
    missed = {**summary["bars"]["k"]["sg-ns"], "both_ge_c": False, "spearman_minus_c": -0.01}
    assert cq.verdict(missed) == "missed: Spearman vs c -0.0100"
    assert cq.verdict(b) == "n/a"


def test_earlier_records_join_the_summary(cq, tmp_path):
    """--records: an earlier run's stdout; its run records are read, other lines skipped."""
    log = tmp_path / "run.log"
    recs = [_rec("sgjax", 0, 0.1, 0.5), _rec("c", 0, 0.09, 0.4)]
    log.write_text("\n".join([json.dumps(recs[0]), "| a table |", json.dumps(recs[1])]))
    log.write_text(log.read_text() + "\n" + json.dumps({"summary": True}) + "\n")
    assert cq.earlier_records(str(log)) == recs


def _spread(cq, a: float, r: float) -> dict:
    return {"analogy": cq.spread([a]), "wordsim_spearman": cq.spread([r])}


def test_the_sgjax_command_is_the_users_and_runs(cq):
    """The venv's ``sgjax`` script where pip made one (the console script's exit), and it
    runs this checkout's code."""
    script = Path(sys.executable).with_name("sgjax")
    if script.is_file():
        assert cq.SGJAX == [str(script)]
    p = subprocess.run(
        [*cq.SGJAX, "config", "--set", "model.dim=7"], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0 and "  dim: 7\n" in p.stdout, p.stderr
