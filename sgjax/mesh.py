"""The device mesh and the processes of a run, and how a training state is laid out on them.

The set-up that :mod:`sgjax.sharding` runs its sharded step on: starting ``jax.distributed``
(:func:`initialize_distributed`), the ``("data", "model")`` mesh (:func:`make_mesh`), the
zero padding of table rows to a multiple of ``mesh.model`` (:func:`padded_rows`,
:func:`pad_state`), the shardings of a state and of a batch, moving arrays between the host
and the mesh (:func:`host_array`), each process's share of an epoch's batches
(:func:`process_batches`) and the bytes each device holds (:func:`bytes_per_device`). No
training code here; :mod:`sgjax.sharding` describes the layout and re-exports these names.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sgjax.config import ConfigError, MeshConfig

if TYPE_CHECKING:
    from sgjax.train import TrainState

DATA, MODEL = "data", "model"
AXES = (DATA, MODEL)
TABLES = ("W", "W_out")

# --------------------------------------------------------------------------------------------
# Processes and the mesh.


def distributed_args(
    mesh_cfg: MeshConfig | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """Keyword arguments for ``jax.distributed.initialize``, or None when not distributed.

    Distributed when ``JAX_COORDINATOR_ADDRESS`` is set (then ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID`` are read too) or ``mesh.distributed`` is true (jax detects the rest
    on TPU pods, SLURM, Open MPI, ...).
    """
    env = os.environ if env is None else env
    addr = env.get("JAX_COORDINATOR_ADDRESS")
    if not addr and not (mesh_cfg is not None and mesh_cfg.distributed):
        return None
    kwargs: dict[str, Any] = {}
    if addr:
        kwargs["coordinator_address"] = addr
    for var, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if env.get(var):
            try:
                kwargs[key] = int(env[var])
            except ValueError:
                raise ConfigError(f"{var}={env[var]!r} is not an integer") from None
    return kwargs


def initialize_distributed(mesh_cfg: MeshConfig | None = None) -> bool:
    """Start ``jax.distributed`` if :func:`distributed_args` says so (call before any other
    JAX work). Returns True when running as one of several processes."""
    kwargs = distributed_args(mesh_cfg)
    if kwargs is None:
        return False
    if not jax.distributed.is_initialized():
        # the CPU backend needs a collectives implementation across processes (ignored on
        # GPU/TPU, which bring their own)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(**kwargs)
    return True


def is_primary() -> bool:
    """True in the process that writes files (process 0; the only one when not distributed)."""
    return jax.process_index() == 0


def make_mesh(mesh_cfg: MeshConfig, devices: list | None = None) -> Mesh:
    """The ``("data", "model")`` mesh of ``mesh.data x mesh.model`` devices.

    Uses the first ``data x model`` devices (all of them when several processes run);
    raises :class:`ConfigError` naming ``mesh.data`` / ``mesh.model`` if there are too few.
    """
    devices = list(jax.devices() if devices is None else devices)
    d, m = mesh_cfg.data, mesh_cfg.model
    need = d * m
    platform = devices[0].platform if devices else "?"
    hint = (
        f" (simulate CPU devices with XLA_FLAGS=--xla_force_host_platform_device_count={need})"
        if platform == "cpu"
        else ""
    )
    if need > len(devices):
        raise ConfigError(
            f"mesh.data x mesh.model = {d} x {m} = {need} devices, but jax has {len(devices)} "
            f"{platform} device(s){hint}; lower mesh.data or mesh.model"
        )
    nproc = len({dev.process_index for dev in devices})
    if nproc > 1 and need != len(devices):
        raise ConfigError(
            f"mesh.data x mesh.model = {need} must equal the {len(devices)} devices of the "
            f"{nproc} processes (every process takes part in each step)"
        )
    mesh = jax.make_mesh(
        (d, m), AXES, axis_types=(jax.sharding.AxisType.Auto,) * 2, devices=devices[:need]
    )
    if nproc > 1:
        for row in mesh.devices:
            if len({dev.process_index for dev in row}) != 1:
                raise ConfigError(
                    f"mesh.model={m} spans processes: with several processes each one must "
                    f"own whole rows of the data axis (mesh.model must divide the "
                    f"{jax.local_device_count()} local devices)"
                )
    return mesh


# --------------------------------------------------------------------------------------------
# Row padding and shardings of the state.


def padded_rows(rows: int, shards: int) -> int:
    """``rows`` rounded up to a multiple of ``shards`` (the stored row count of a table)."""
    return -(-rows // shards) * shards


def _key_name(k: Any) -> Any:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return getattr(k, attr)
    return k


def _row_table(path: tuple, leaf: Any, params: Mapping[str, Any]) -> str | None:
    """The table (``W``/``W_out``) a state leaf is row-aligned with, else None."""
    if not path or _key_name(path[-1]) not in TABLES or not hasattr(leaf, "shape"):
        return None
    k = _key_name(path[-1])
    return k if tuple(leaf.shape) == tuple(params[k].shape) else None


def _map_rows(fn: Callable[[str, Any], Any], other: Callable[[Any], Any], state: TrainState):
    """Apply ``fn(table, leaf)`` to the row-aligned leaves of ``state`` and ``other`` to the
    rest (params and optimizer-state leaves shaped like ``W`` or ``W_out``)."""
    params = state.params

    def visit(path: tuple, leaf: Any) -> Any:
        if path and _key_name(path[0]) in ("params", "opt_state"):
            table = _row_table(path, leaf, params)
            if table is not None:
                return fn(table, leaf)
        return other(leaf)

    return jax.tree_util.tree_map_with_path(visit, state)


def pad_state(state: TrainState, multiple: int) -> TrainState:
    """Zero-pad the rows of every row-aligned leaf to a multiple of ``multiple`` (host numpy)."""

    def pad(_: str, x: Any) -> np.ndarray:
        x = np.asarray(x)
        extra = padded_rows(x.shape[0], multiple) - x.shape[0]
        return np.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1)) if extra else x

    return _map_rows(pad, lambda x: x, state)


def unpad_state(state: TrainState, rows: Mapping[str, int]) -> TrainState:
    """The first ``rows[table]`` rows of every row-aligned leaf (the padding dropped)."""
    return _map_rows(lambda t, x: x[: rows[t]], lambda x: x, state)


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """NamedShardings like ``state``: row-aligned leaves ``P("model")``, the rest replicated."""
    rows, rep = NamedSharding(mesh, P(MODEL)), NamedSharding(mesh, P())
    return _map_rows(lambda t, x: rows, lambda x: rep, state)


def batch_shardings(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, NamedSharding]:
    """``S x B x ...`` leaves split on ``B`` over ``"data"``; per-step ``(S,)`` ones replicated."""
    return {
        k: NamedSharding(mesh, P(None, DATA) if np.ndim(v) >= 2 else P()) for k, v in batch.items()
    }


def _put(x: Any, sharding: NamedSharding) -> jax.Array:
    """A global array of the (same on every process) host value ``x``."""
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def host_array(x: Any) -> np.ndarray:
    """The whole array on the host (a collective when several processes hold pieces)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


# --------------------------------------------------------------------------------------------
# Multi-host batches.


def _empty_like(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A batch that trains nothing: every mask False, no words."""
    out = {k: np.asarray(v).copy() for k, v in batch.items()}
    out["mask"] = np.zeros_like(out["mask"])
    out["words"] = np.zeros_like(out["words"])
    return out


def process_batches(batches: Iterable[dict], index: int, count: int) -> Iterator[dict]:
    """Process ``index``'s share of ``count``: batches ``index, index + count, ...``.

    Every process yields ``ceil(n / count)`` batches for ``n`` input batches (a process
    without a batch in the last round gets an empty one: mask all False, words 0), so all
    processes run the same number of steps.
    """
    if not 0 <= index < count:
        raise ValueError(f"process index {index} not in [0, {count})")
    if count == 1:
        yield from batches
        return
    group: list[dict] = []
    for b in batches:
        group.append(b)
        if len(group) == count:
            yield group[index]
            group = []
    if group:
        yield group[index] if index < len(group) else _empty_like(group[0])


def process_rows(batches: Iterable[dict], index: int, count: int) -> Iterator[dict]:
    """Process ``index``'s share of ``count`` of every batch: rows ``[index B/count,
    (index + 1) B/count)``, so the processes' shares, concatenated along the data axis, are
    the batch itself (for batches whose rows have a layout, ``train.window_buckets``).
    Process 0 carries the batch's ``words``, the others 0 (they are summed)."""
    if not 0 <= index < count:
        raise ValueError(f"process index {index} not in [0, {count})")
    for b in batches:
        B = b["center"].shape[0]
        rows = slice(index * B // count, (index + 1) * B // count)
        out = {k: v[rows] for k, v in b.items() if k != "words"}
        out["words"] = b["words"] if index == 0 else np.zeros_like(b["words"])
        yield out


def check_process_blocks(mesh: Mesh) -> None:
    """Raise unless each process ``p`` of ``P`` holds the ``p``-th contiguous block of the
    mesh's data axis: :func:`process_rows` gives process ``p`` rows ``[p B/P, (p+1) B/P)``
    and ``jax.make_array_from_process_local_data`` places them on its devices, so the rows'
    layout (window buckets) survives only if those devices hold exactly that block."""
    owners = np.vectorize(lambda d: d.process_index)(mesh.devices)  # (data, model)
    D, n = owners.shape[0], jax.process_count()
    for p in range(n):
        held = sorted({int(d) for d in np.nonzero((owners == p).any(axis=1))[0]})
        if held != list(range(p * D // n, (p + 1) * D // n)):
            raise ConfigError(
                f"train.window_buckets: process {p} holds data-axis indices {held} of "
                f"{D}, not its contiguous block; run with train.window_buckets=false"
            )


def bytes_per_device(state: Any) -> dict[str, int]:
    """Bytes each device holds of ``params`` and ``opt_state`` (the max over devices)."""
    out: dict[str, int] = {}
    for name, tree in (("W", state.params["W"]), ("W_out", state.params["W_out"])):
        out[name] = _max_device_bytes([tree])
    out["opt_state"] = _max_device_bytes(jax.tree.leaves(state.opt_state))
    return out


def _max_device_bytes(leaves: list) -> int:
    per: dict[Any, int] = {}
    for x in leaves:
        if not isinstance(x, jax.Array):
            continue
        for s in x.addressable_shards:
            per[s.device] = per.get(s.device, 0) + math.prod(s.data.shape) * x.dtype.itemsize
    return max(per.values(), default=0)
