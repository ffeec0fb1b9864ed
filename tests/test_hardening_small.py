"""Bad inputs give one clear line: ``sgjax gradcheck``'s arguments, the values of
``optimizer.kwargs`` and chain entries, ``train.dtype=float64`` without JAX's 64-bit mode, and
a run that diverges before its first checkpoint."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import jax
import optax
import pytest
from test_train import tiny_cfg, write_toy_corpus

from sgjax.cli import main as cli_main
from sgjax.config import ConfigError, load_config, x64_enabled
from sgjax.config_optax import expected_kind, optax_optimizer_names, optax_transform_names
from sgjax.experiment import build
from sgjax.gradcheck import check, random_problem
from sgjax.loop import Hooks, fit
from sgjax.model import ModelSpec
from sgjax.train import NonFiniteLossError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


def one_error_line(capsys, command: str) -> str:
    """The single stderr line ``sgjax COMMAND: error: ...``, nothing on stdout."""
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, (out, err)
    assert lines[0].startswith(f"sgjax {command}: error: "), lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------
# 1. sgjax gradcheck: arguments below their minimum are refused before anything runs.

GRADCHECK_BAD = {
    "vocab 1": (["--vocab-size", "1"], "--vocab-size must be >= 2, got 1 (hierarchical"),
    "vocab 0": (["--vocab-size", "0"], "--vocab-size must be >= 2, got 0"),
    "dim 0": (["--dim", "0"], "--dim must be >= 1, got 0"),
    "dim -1": (["--dim", "-1"], "--dim must be >= 1, got -1"),
    "batch 0": (["--batch-size", "0"], "--batch-size must be >= 4, got 0"),
    "batch 3": (["--batch-size", "3"], "--batch-size must be >= 4, got 3 (examples 0-2"),
    "window 0": (["--window", "0"], "--window must be >= 1, got 0"),
    "window -2": (["--window", "-2"], "--window must be >= 1, got -2"),
    "negatives 0": (["--negatives", "0"], "--negatives must be >= 1, got 0 (negative, nce"),
    "negatives -1": (["--negatives", "-1"], "--negatives must be >= 1, got -1"),
    "negatives -1, no sampling layer": (
        ["--negatives", "-1", "--output", "softmax"],
        "--negatives must be >= 0, got -1 (no layer checked draws noise words)",
    ),
    "seed -1": (["--seed", "-1"], "--seed must be >= 0, got -1"),
    "two at once": (["--dim", "0", "--window", "0"], "got 0 (a vector needs a component); --win"),
}


@pytest.mark.parametrize("args,fragment", GRADCHECK_BAD.values(), ids=GRADCHECK_BAD)
def test_gradcheck_refuses_arguments_below_their_minimum(capsys, args, fragment):
    """sgjax gradcheck --dim 0   (before: ZeroDivisionError, exit 1; --vocab-size 1: "need
    batch_size >= 4, vocab_size >= 4, window >= 1"; --negatives 0: softmax and hierarchical
    ran, then "output layer 'negative' needs negatives >= 1")"""
    assert cli_main(["gradcheck", "--model", "skipgram", *args]) == 2
    assert fragment in one_error_line(capsys, "gradcheck")


GRADCHECK_GOOD = {
    "negatives 0 without a sampling layer": (["--negatives", "0", "--output", "hierarchical"], 1),
    "the smallest vocabulary": (["--vocab-size", "2", "--output", "hierarchical"], 1),
    "one negative, shared too": (["--negatives", "1", "--output", "negative", "--all-variants"], 2),
}


@pytest.mark.parametrize("args,records", GRADCHECK_GOOD.values(), ids=GRADCHECK_GOOD)
def test_gradcheck_runs_at_the_minimum(capsys, args, records):
    """sgjax gradcheck --model skipgram --vocab-size 2 --output hierarchical   (before: "need
    ... vocab_size >= 4"); sgjax gradcheck --model skipgram --output negative --negatives 1
    --all-variants   (before: IndexError planting the shared negatives, exit 1)"""
    assert cli_main(["gradcheck", "--model", "skipgram", *args]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == records and err == ""


def test_random_problem_names_the_argument():
    """python -c 'from sgjax.gradcheck import *; random_problem(ModelSpec(), dim=0)'
    (before: ZeroDivisionError)"""
    with pytest.raises(ValueError, match=r"dim must be >= 1, got 0"):
        random_problem(ModelSpec(), dim=0)
    assert check(ModelSpec(output="negative", negatives=1, shared_negatives=True))["ok"]


# --------------------------------------------------------------------------------------------
# 2. optimizer.kwargs and chain entries: a value of the wrong kind names its key.

KWARGS_BAD = {
    "string for a number": (
        ["optimizer.name=adam", "optimizer.kwargs={b1: abc}"],
        "optimizer.kwargs.b1='abc': optax.adam's b1 takes a number (default 0.9)",
    ),
    "bool for a number": (
        ["optimizer.name=adam", "optimizer.kwargs={b1: true}"],
        "optimizer.kwargs.b1=True: optax.adam's b1 takes a number",
    ),
    "null for a number": (
        ["optimizer.name=adam", "optimizer.kwargs={eps: null}"],
        "optimizer.kwargs.eps=None: optax.adam's eps takes a number (default 1e-08)",
    ),
    "number for a bool": (
        ["optimizer.name=adam", "optimizer.kwargs={nesterov: 3}"],
        "optimizer.kwargs.nesterov=3: optax.adam's nesterov takes true or false",
    ),
    "string in a chain entry": (
        ["optimizer.sparse=dense", "optimizer.chain=[{clip_by_global_norm: {max_norm: big}}]"],
        "optimizer.chain[0].clip_by_global_norm.max_norm='big': optax.clip_by_global_norm's "
        "max_norm takes a number",
    ),
    "not a Literal's choice": (
        ["optimizer.chain=[{scale_by_lion: {mode: soft}}]"],
        "mode='soft': optax.scale_by_lion's mode takes one of 'hard', 'smooth', 'refined'",
    ),
}


@pytest.mark.parametrize("overrides,fragment", KWARGS_BAD.values(), ids=KWARGS_BAD)
def test_optimizer_kwargs_of_the_wrong_kind_name_the_key(overrides, fragment):
    """sgjax train --config configs/smoke.yaml --set optimizer.name=adam --set
    'optimizer.kwargs={b1: abc}' --quiet --out /tmp/x   (before: "optimizer.name='adam':
    optax.adam does not run as update(grads, state, params) (TypeError: unsupported operand
    type(s) for -: 'int' and 'str'); ... is not supported", no word of b1)"""
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert fragment in str(info.value)


KWARGS_GOOD = {
    "an int for a float": ["optimizer.name=adam", "optimizer.kwargs={b1: 0, eps: 1e-8}"],
    "a dtype name": ["optimizer.name=adam", "optimizer.kwargs={mu_dtype: bfloat16}"],
    "null where optional": ["optimizer.name=adafactor", "optimizer.kwargs={momentum: null}"],
    "a mask mapping": ["optimizer.name=lion", "optimizer.kwargs={mask: {W: true}}"],
    "a list for a tuple": ["optimizer.chain=[{adaptive_grad_clip: {clipping: 1, axis: [0]}}]"],
}


@pytest.mark.parametrize("overrides", KWARGS_GOOD.values(), ids=KWARGS_GOOD)
def test_optimizer_kwargs_of_the_right_kind_load(overrides):
    load_config(None, overrides)


def test_every_optax_default_is_of_its_own_kind():
    """The kinds never refuse what optax itself defaults to (no false alarms)."""
    for name in sorted({*optax_optimizer_names(), *optax_transform_names()}):
        for p in inspect.signature(getattr(optax, name)).parameters.values():
            kind = expected_kind(p)
            if kind is not None and p.default is not p.empty:
                assert kind[1](p.default), (name, p.name, p.default, kind[0])


def test_cli_names_the_optimizer_kwarg(capsys, tmp_path):
    """sgjax train --config configs/smoke.yaml --set optimizer.name=adam --set
    'optimizer.kwargs={b1: abc}' --quiet --out /tmp/x"""
    argv = ["train", "--config", str(ROOT / "configs/smoke.yaml"), "--quiet"]
    argv += ["--set", "optimizer.name=adam", "--set", "optimizer.kwargs={b1: abc}"]
    assert cli_main([*argv, "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys, "train")
    assert "optimizer.kwargs.b1='abc'" in line and "takes a number" in line


# --------------------------------------------------------------------------------------------
# 3. train.dtype=float64 needs JAX's 64-bit mode.


def test_float64_without_x64_is_a_config_error():
    """sgjax train --config configs/smoke.yaml --set train.dtype=float64 --quiet --out /tmp/f
    (before: trained float32 tables, with float64 in config.yaml)"""
    with jax.enable_x64(False):
        assert not x64_enabled()
        with pytest.raises(ConfigError) as info:
            load_config(None, ["train.dtype=float64"])
    msg = str(info.value)
    for fragment in ("--set train.dtype=float64", "train.dtype=float64", "JAX_ENABLE_X64=1"):
        assert fragment in msg
    assert 'jax.config.update("jax_enable_x64", True)' in msg


def test_float64_loads_with_x64():
    with jax.enable_x64(True):
        assert load_config(None, ["train.dtype=float64"]).train.dtype == "float64"
    code = "from sgjax.config import load_config as f; print(f(None, ['train.dtype=float64']))"
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "dtype=<DType.float64" in done.stdout, done.stderr


def test_cli_refuses_float64_without_x64(capsys, tmp_path):
    """JAX_ENABLE_X64 unset: sgjax train --config configs/smoke.yaml --set train.dtype=float64"""
    with jax.enable_x64(False):
        argv = ["train", "--config", str(ROOT / "configs/smoke.yaml"), "--quiet"]
        argv += ["--set", "train.dtype=float64", "--out", str(tmp_path / "run")]
        assert cli_main(argv) == 2
    assert "JAX_ENABLE_X64=1" in one_error_line(capsys, "train")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------
# 4. A run that diverges before its first checkpoint says so.


def test_divergence_before_any_checkpoint_says_none_was_written(corpus):
    """sgjax train --config configs/smoke.yaml --set optimizer.learning_rate=1e30 --quiet
    --out /tmp/div   (before: "the last good checkpoint is kept (None)")"""
    cfg = tiny_cfg(corpus, "train.epochs=1", "optimizer.learning_rate=1e30")
    run = build(cfg)
    with pytest.raises(NonFiniteLossError) as info:
        fit(
            run.state,
            run.batches,
            run.tables,
            run.spec,
            epochs=1,
            steps_per_call=8,
            hooks=Hooks(checkpoint=lambda state, why: None),
        )
    msg = str(info.value)
    assert "no checkpoint was written yet" in msg and "None" not in msg
    assert "at or before step 8" in msg


def test_cli_divergence_before_any_checkpoint(capsys, corpus, tmp_path):
    """The same through the CLI: exit code 3, one line."""
    sets = [f"data.corpus={corpus}", "data.min_count=1", "optimizer.learning_rate=1e30"]
    sets += ["eval.analogies=false", "eval.similarity=false", "train.batch_size=64"]
    argv = ["train", "--quiet", "--out", str(tmp_path / "run")]
    assert cli_main([*argv, *(a for s in sets for a in ("--set", s))]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint was written yet" in err[0], err
    assert not list((tmp_path / "run").glob("checkpoints/*"))
