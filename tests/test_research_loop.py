"""scripts/research_loop.py: the research loop through public names only."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from test_train import write_toy_corpus

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "research_loop.py"


def load_script():
    spec = importlib.util.spec_from_file_location("research_loop", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_uses_no_private_name():
    tree = ast.parse(SCRIPT.read_text())
    dunder = {"__future__", "__file__", "__doc__", "__name__"}
    names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)]
    names += [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert [x for x in names if x.startswith("_") and x not in dunder] == []


def run_loop(tmp_path, *overrides: str) -> dict:
    pytest.importorskip("matplotlib")
    argv = ["--out", str(tmp_path / "loop"), "--every", "10"]
    for o in overrides:
        argv += ["--set", o]
    return load_script().main(argv)


def test_research_loop_on_a_toy_corpus(tmp_path, capsys):
    corpus = write_toy_corpus(tmp_path)
    report = run_loop(
        tmp_path,
        f"data.corpus={corpus}",
        "data.min_count=1",
        "data.sample=0",
        "train.batch_size=64",
        "eval.analogies=false",
        "eval.similarity=false",
    )
    runs = report["runs"]
    assert set(runs) == {"sgd", "adam", "sgd+2", "from_sgd"}
    for name in ("sgd", "adam", "from_sgd"):  # a loss record every 10 steps
        assert runs[name]["logged"] == runs[name]["steps"] // 10 >= 3
        assert 0 < runs[name]["last_loss"] < 3
    assert runs["sgd+2"]["steps"] > 2 * runs["sgd"]["steps"]  # 1 epoch + 2 more
    assert runs["from_sgd"]["first_loss"] < runs["sgd"]["first_loss"]  # a head start
    assert sorted(Path(f).name for f in report["figures"])[0] == "loss-time.png"
    assert (tmp_path / "loop" / "figures" / "loss.png").stat().st_size > 10_000


@pytest.mark.slow
def test_research_loop_on_the_smoke_config_within_two_minutes(tmp_path):
    report = run_loop(tmp_path)
    assert report["seconds"] < 120 and len(report["figures"]) == 4
