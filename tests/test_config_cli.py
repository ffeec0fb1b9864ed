"""`sgjax config` (the resolved config as YAML), several --config files on the command line,
and the config keys with their docs in `sgjax train --help`."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sgjax.cli import build_parser
from sgjax.cli import main as cli_main
from sgjax.config import Config, load_config, to_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
A_YAML = "model:\n  architecture: cbow\n  dim: 50\noptimizer:\n  name: adam\n"
B_YAML = "model:\n  dim: 60\noptimizer:\n  kwargs: {b1: 0.8}\n"

#: case -> (config files: names of configs/ recipes or of the files above, --set items)
CASES = {
    "defaults": ([], []),
    "a model by --set": ([], ["model.architecture=cbow", "model.output=hierarchical"]),
    "a recipe": (["sg_hs.yaml"], []),
    "two files": (["a.yaml", "b.yaml"], []),
    "two files and --set": (["a.yaml", "b.yaml"], ["model.dim=70", "optimizer.kwargs={}"]),
    "a recipe over a file": (["a.yaml", "sg_ns_chain.yaml"], ["train.seed=3"]),
}


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    (tmp_path / "a.yaml").write_text(A_YAML)
    (tmp_path / "b.yaml").write_text(B_YAML)
    return {"a.yaml": tmp_path / "a.yaml", "b.yaml": tmp_path / "b.yaml"}


def arguments(files: dict[str, Path], names: list[str], sets: list[str]) -> tuple[list, list]:
    paths = [files.get(n, CONFIGS / n) for n in names]
    args = [a for p in paths for a in ("--config", str(p))]
    return paths, args + [a for s in sets for a in ("--set", s)]


@pytest.mark.parametrize("case", list(CASES))
def test_config_prints_the_resolved_yaml_that_loads_back(case, files, tmp_path, capsys):
    paths, args = arguments(files, *CASES[case])
    assert cli_main(["config", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    want = load_config(paths, CASES[case][1])
    assert out == to_yaml(want)  # exactly what a run writes as config.yaml
    printed = tmp_path / "printed.yaml"
    printed.write_text(out)
    assert load_config(printed) == want


def test_config_merges_files_in_order(files, capsys):
    for order, dim in ((["a.yaml", "b.yaml"], 60), (["b.yaml", "a.yaml"], 50)):
        _, args = arguments(files, order, [])
        assert cli_main(["config", *args]) == 0
        d = yaml.safe_load(capsys.readouterr().out)
        assert d["model"]["dim"] == dim  # the later file's
        assert (d["model"]["architecture"], d["optimizer"]["name"]) == ("cbow", "adam")  # a's
        assert d["optimizer"]["kwargs"] == {"b1": 0.8}  # b's
        assert d["train"]["batch_size"] == 640  # CBOW's default, from the merged model


#: case -> (yaml text of bad.yaml or None, extra arguments, substrings of the one-line error)
BAD = {
    "bad value": ("model:\n  dim: -3\n", [], ["bad.yaml:2: model.dim must be >= 1"]),
    "unknown key": ("train:\n  epoch: 3\n", [], ["bad.yaml:2", "unknown key 'train.epoch'"]),
    "bad --set": (None, ["--set", "model.window=0"], ["--set model.window=0", "model.window"]),
    "missing file": (None, ["--config", "nope.yaml"], ["cannot read config file nope.yaml"]),
    "invalid YAML": ("model: [1\n", [], ["bad.yaml:", "invalid YAML"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_config_bad_input_is_one_line_and_exit_2(case, files, tmp_path, capsys):
    text, extra, needles = BAD[case]
    args = ["config", "--config", str(files["a.yaml"])]
    if text is not None:
        (tmp_path / "bad.yaml").write_text(text)
        args += ["--config", str(tmp_path / "bad.yaml")]
    assert cli_main([*args, *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("sgjax config: error: ")
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


def test_train_merges_config_files_and_writes_what_config_prints(files, tmp_path, capsys):
    corpus = tmp_path / "toy.txt"
    corpus.write_text("the cat sees the dog\nthe dog sees the cat\n" * 30)
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(
        f"data: {{corpus: {corpus}, min_count: 1, sample: 0}}\nmodel: {{dim: 8, window: 2}}\n"
        "train: {epochs: 1, batch_size: 16, steps_per_call: 4}\n"
        "eval: {analogies: false, similarity: false}\n"
    )
    args = ["--config", str(files["a.yaml"]), "--config", str(tiny), "--set", "train.seed=5"]
    assert cli_main(["config", *args]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "run"
    assert cli_main(["train", "--quiet", "--out", str(out), *args]) == 0
    assert (out / "config.yaml").read_text() == printed
    cfg = load_config(out / "config.yaml")
    assert (cfg.model.architecture, cfg.model.dim, cfg.optimizer.name) == ("cbow", 8, "adam")


# --------------------------------------------------------------------------------------------
# sgjax train --help: every key of the schema with its default and doc.


def schema_leaves(schema=Config, prefix=""):
    """(dotted key, field) of every leaf key, straight from the dataclasses."""
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(f.default_factory):
            yield from schema_leaves(f.default_factory, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f


def train_help() -> str:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices["train"].format_help()


def test_train_help_lists_every_key_with_its_default_and_doc():
    text = train_help()
    flat = " ".join(text.split())
    listed = {
        line.split("=", 1)[0].strip()
        for line in text.splitlines()
        if line.startswith("  ") and "." in line.split("=", 1)[0] and "=" in line
        if " " not in line.split("=", 1)[0].strip()
    }
    leaves = dict(schema_leaves())
    assert listed == set(leaves)
    for key, f in leaves.items():
        doc = f.metadata.get("doc", "")
        assert doc, f"{key} has no doc"
        assert " ".join(doc.split()) in flat, f"the doc of {key} is not in sgjax train --help"
    for section in (f.name for f in dataclasses.fields(Config)):
        assert f"\n{section}: " in text, section


@pytest.mark.parametrize(
    "key, default",
    [
        ("model.dim", "100"),
        ("model.architecture", "skipgram"),
        ("data.corpus", "null"),
        ("data.shuffle", "true"),
        ("optimizer.kwargs", "{}"),
        ("optimizer.chain", "[]"),
        ("optimizer.sparse", "lazy"),
        ("eval.restrict_vocab", "30000"),
    ],
)
def test_train_help_shows_defaults_as_written_in_yaml(key, default):
    assert f"\n  {key}={default} " in train_help()


def test_describe_keys_imports_neither_jax_nor_omegaconf():
    code = (
        "import sys; from sgjax.config_docs import describe_keys; import sgjax.commands.config; "
        "describe_keys(); print(sorted(m for m in ('jax', 'omegaconf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
