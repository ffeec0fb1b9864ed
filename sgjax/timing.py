"""Whole-process time: where the seconds of a run go (a per-phase wall clock for
:func:`sgjax.experiment.train`), and JAX's persistent compilation cache, which takes the
step's compilation (~2 s on a CPU) out of every run after the first with the same shapes.

A run's phases are ``import`` (the process's start to the first phase: Python, JAX and
sgjax imports, config parsing), ``vocab``, ``encode``, ``setup`` (device tables, optimizer,
state, counting the steps of an epoch), ``compile`` (JAX tracing, lowering and XLA
compilation of every program the run builds, from JAX's own monitoring events; with the
persistent compilation cache a hit costs only its retrieval), ``train`` (the fit loop
less the other phases it contains), ``eval``, ``checkpoint`` and ``write``. The phases add up
to the run's wall time, less what no phase covers (``other``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import jax
from jax import monitoring

#: JAX's monitoring events whose durations are compilation work (jax._src.dispatch).
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
#: The order phases are reported in.
PHASES = ("import", "vocab", "encode", "setup", "compile", "train", "eval", "checkpoint", "write")

_compile_s = [0.0]  # every compilation of this process, summed by the listener


def _on_event(name: str, secs: float, **kwargs) -> None:
    if name in COMPILE_EVENTS:
        _compile_s[0] += secs


monitoring.register_event_duration_secs_listener(_on_event)


def compile_seconds() -> float:
    """Seconds this process has spent compiling JAX programs so far."""
    return _compile_s[0]


def process_age() -> float | None:
    """Seconds since this process started (Linux: /proc), or None where unknown."""
    try:
        with open(f"/proc/{os.getpid()}/stat", "rb") as f:
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Clock:
    """Seconds per phase. ``with clock("eval"): ...`` adds to a phase; phases may nest
    (``train`` is the fit loop's time less the phases timed inside it, and ``compile`` is
    taken out of whichever phase compiled)."""

    def __init__(self, from_process_start: bool = False) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()
        self._age = process_age() if from_process_start else None
        self._inner = [[0.0, 0.0]]  # per open phase: (seconds, compile s) of nested phases

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t, c = time.perf_counter(), compile_seconds()
        self._inner.append([0.0, 0.0])
        try:
            yield
        finally:
            dt, compiled = time.perf_counter() - t, compile_seconds() - c
            inner, inner_compiled = self._inner.pop()
            self.add(phase, dt - inner - (compiled - inner_compiled))
            self.add("compile", compiled - inner_compiled)
            self._inner[-1][0] += dt
            self._inner[-1][1] += compiled

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(0.0, seconds)

    def report(self) -> dict:
        """``{"phases_s": {phase: s}, "wall_s": s, "other_s": s}``: wall time to now from
        the clock's start, or with ``from_process_start`` from the process's (its age
        then is the ``import`` phase)."""
        elapsed = time.perf_counter() - self._start
        phases = dict(self.seconds)
        if self._age is not None:
            phases["import"] = self._age
        wall = elapsed + (self._age or 0.0)
        order = [p for p in PHASES if p in phases] + sorted(set(phases) - set(PHASES))
        out = {p: round(phases[p], 3) for p in order}
        return {
            "phases_s": out,
            "wall_s": round(wall, 3),
            "other_s": round(wall - sum(phases.values()), 3),
        }


def default_cache_dir() -> str:
    """``$SGJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/sgjax/xla`` (``~/.cache/sgjax/xla``)."""
    if os.environ.get("SGJAX_CACHE_DIR"):
        return os.path.expanduser(os.environ["SGJAX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sgjax", "xla")


def use_compile_cache(setting: bool | str | None) -> str | None:
    """Point JAX's persistent compilation cache at a directory (``train.compile_cache``:
    true = :func:`default_cache_dir`, a path, or false/None = leave JAX as it is) and
    return it. A cache the user configured for JAX already (``JAX_COMPILATION_CACHE_DIR``,
    ``jax.config``) is kept. Every program is cached (no minimum compile time): a hit
    costs ~0.5 s for all of a run's programs against ~2.3 s compiling them (BENCHMARKS.md,
    "Whole process"). An unwritable directory leaves the cache off."""
    current = jax.config.jax_compilation_cache_dir
    if current or setting is None or setting is False:
        return current or None
    path = default_cache_dir() if setting is True else os.path.expanduser(str(setting))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()  # JAX decides once whether it uses a cache: again now
    return path
