"""The per-phase clock and the persistent compilation cache (sgjax.timing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from sgjax.timing import Clock, compile_seconds, process_age


def test_phases_nest_and_compilation_is_its_own_phase():
    clock = Clock()
    with clock("train"):
        time.sleep(0.05)
        with clock("eval"):
            time.sleep(0.03)
            # a program never compiled before: its compilation is taken out of "eval"
            c0 = compile_seconds()
            jax.jit(lambda x: jnp.sin(x) * 3.25 + x.shape[0])(jnp.ones(17)).block_until_ready()
            compiled = compile_seconds() - c0
    r = clock.report()
    p = r["phases_s"]
    assert compiled > 0 and p["compile"] == pytest.approx(compiled, abs=2e-3)
    assert 0.03 <= p["eval"] < 0.03 + 0.05
    assert 0.05 <= p["train"] < 0.05 + 0.05  # without the nested eval and its compilation
    assert "import" not in p  # the clock counts from its own start
    assert r["other_s"] >= 0
    assert r["wall_s"] == pytest.approx(sum(p.values()) + r["other_s"], abs=2e-3)


def test_process_start_is_the_import_phase():
    age = process_age()
    if age is None:
        pytest.skip("no /proc on this platform")
    assert 0 < age < 24 * 3600
    r = Clock(from_process_start=True).report()
    assert r["phases_s"]["import"] >= age - 0.02  # /proc counts in clock ticks
    assert r["wall_s"] >= r["phases_s"]["import"]


PROGRAM = """
import json, sys
import jax, jax.numpy as jnp
from sgjax.timing import use_compile_cache
jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()  # compiled before: must still work
path = use_compile_cache(json.loads(sys.argv[1]))
jax.jit(lambda x: jnp.cos(x) * 7.5)(jnp.ones(11)).block_until_ready()
print(json.dumps(path))
"""


def _run(setting, env_extra: dict) -> str | None:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(setting)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_compile_cache_directory_choices(tmp_path):
    home = tmp_path / "sgjax-cache"
    # true: $SGJAX_CACHE_DIR; programs land there even after an earlier compilation
    assert _run(True, {"SGJAX_CACHE_DIR": str(home)}) == str(home)
    assert any(home.iterdir())
    # a path of its own
    own = tmp_path / "own"
    assert _run(str(own), {"SGJAX_CACHE_DIR": str(home)}) == str(own) and any(own.iterdir())
    # false: no cache, nothing written
    off = tmp_path / "off"
    assert _run(False, {"SGJAX_CACHE_DIR": str(off)}) is None and not off.exists()
    # a cache the user set for JAX wins
    user = tmp_path / "user"
    got = _run(True, {"SGJAX_CACHE_DIR": str(home), "JAX_COMPILATION_CACHE_DIR": str(user)})
    assert got == str(user)
    # an unwritable place: no cache, no error
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _run(str(blocker / "sub"), {}) is None
