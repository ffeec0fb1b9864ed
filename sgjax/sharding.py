"""Sharded training with ``jax.sharding``: a (data x model) device mesh, one or many hosts.

Nothing here changes the training algorithm: :func:`sgjax.train.train_step` runs unchanged
under ``jax.jit`` with input and output shardings, and XLA's SPMD partitioner (GSPMD)
splits the program over the devices. A jitted program means the same on any sharding, so a
sharded run computes the same function as a one-device run; only the order of
floating-point sums can differ (below).

Mesh (config section ``mesh``): ``mesh.data`` devices along the ``"data"`` axis and
``mesh.model`` along the ``"model"`` axis (:func:`make_mesh`).

- Batches (``S`` stacked steps, ``S x B x ...``) are split on the batch dimension ``B`` over
  ``"data"`` (``train.batch_size`` is the global batch; it must divide by ``mesh.data``);
  per-step scalars (``active``, ``words``) are replicated.
- ``W``, ``W_out`` and every optimizer-state leaf shaped like one of them (Adam's moments,
  Adagrad's accumulators, ...) are split by rows over ``"model"`` and replicated over
  ``"data"``; everything else in the state (step counters, the PRNG key) is replicated.
  Bytes per device for the tables and their state fall as ``1 / mesh.model``
  (``scripts/bench_memory.py``).
- The small lookup tables of a step (noise CDF, Huffman paths) are replicated.

Gathers of table rows (``W[center]``, ``W_out[rows]``) and scatters of row updates on a
row-sharded table are partitioned by XLA: each model shard reads / writes the rows it owns
and gathered rows are summed over the model axis (one owner per row: exact). The explicit
rules' row gradients are all-gathered over the data axis before the optimizer
(:func:`gather_row_grads`), so every data replica applies all rows in batch order; a dense
gradient (autodiff) is summed over the data shards. Both gradient modes work unchanged.

Uneven sharding: ``jax.device_put`` and ``jax.jit`` (0.10) accept only shapes that divide
by the mesh axis, so a table of R rows is stored with ``padded_rows(R, mesh.model)`` rows,
the extra rows zero in the parameters and in the optimizer state. Training never touches
them: token ids, negatives (< V) and Huffman nodes (< V - 1) index real rows only, and
padding entries of a row gradient use the out-of-range index "table rows", dropped by the
scatters. Their gradient is zero, so they stay zero under every element-wise optimizer.
The full softmax is the exception (padding rows of ``W_out`` would join its normaliser):
with ``model.output=softmax`` and ``mesh.model > 1`` the vocabulary size must divide by
``mesh.model``, else :class:`~sgjax.config.ConfigError`. :meth:`Plan.logical` drops the
padding; checkpoints hold the padded arrays and restore onto any other mesh
(:func:`sgjax.checkpoint.restore` with ``pad_rows=True`` zero-pads or truncates rows).

Reduction order and equivalence: XLA on a fixed backend, program and sharding is
deterministic (the same run twice gives the same bits). Across shardings the order of some
float32 sums changes: the loss and other sums over the batch (per data shard, then over
``"data"`` in device order, where one device sums the batch in batch order), dense
``jax.grad`` gradients (the same), and any intermediate the partitioner chooses to split.
Gathers are exact and row updates are applied in batch order on every replica, so explicit
skip-gram runs are bit-identical to one device; the rest agrees to float32 round-off that
grows with the number of steps (``tests/test_sharding.py`` bounds it for 1, 2, 4, 8 devices
and 2x4, 4x2 meshes).

Multi-host (``jax.distributed``): :func:`initialize_distributed` starts it when
``JAX_COORDINATOR_ADDRESS`` is set (with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``) or
``mesh.distributed: true`` (cluster auto-detection: TPU pods, SLURM, Open MPI, ...). The
mesh then spans every process's devices; process ``p`` of ``P`` generates batches of
``batch_size / P`` examples and keeps every ``P``-th one from number ``p``
(:func:`process_batches`), so global step ``k`` holds local batches ``kP, ..., kP + P - 1``:
the same examples, in the same order, as one process's batch ``k`` of ``batch_size`` (the
pipeline cuts one stream of examples into batches). ``words`` counts are summed over the
processes. Each process must own whole rows of the data axis (``mesh.model`` divides the
local device count). Only process 0 writes files (:func:`is_primary`); checkpoints are
written by all processes together (orbax).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sgjax.config import Config, ConfigError, MeshConfig
from sgjax.params import output_rows
from sgjax.sparse import RowGrads
from sgjax.train import StepSpec, TrainState, init_state, train_step

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


# --------------------------------------------------------------------------------------------
# The plan: mesh, placement and the sharded step.


@dataclasses.dataclass
class Plan:
    """How a run is laid out: the mesh and the real (unpadded) row counts of the tables."""

    mesh: Mesh
    rows: dict[str, int]
    _step: ShardedStep | None = dataclasses.field(default=None, init=False, repr=False)

    @property
    def model_shards(self) -> int:
        return int(self.mesh.shape[MODEL])

    def abstract(self, state: TrainState) -> TrainState:
        """ShapeDtypeStructs (padded shapes, shardings) of ``state``: a restore target."""
        rows, rep = NamedSharding(self.mesh, P(MODEL)), NamedSharding(self.mesh, P())

        def row(_: str, x: Any) -> jax.ShapeDtypeStruct:
            shape = (padded_rows(x.shape[0], self.model_shards), *x.shape[1:])
            return jax.ShapeDtypeStruct(shape, x.dtype, sharding=rows)

        return _map_rows(row, lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), state)

    def place(self, state: TrainState) -> TrainState:
        """``state`` (logical or already padded) padded and put on the mesh."""
        sh = state_shardings(state, self.mesh)
        if all(
            isinstance(x, jax.Array) and x.sharding == s
            for x, s in zip(jax.tree.leaves(state), jax.tree.leaves(sh), strict=True)
        ):
            return state
        host = pad_state(jax.tree.map(host_array, state), self.model_shards)
        return jax.tree.map(_put, host, state_shardings(host, self.mesh))

    def logical(self, state: TrainState) -> TrainState:
        """The unpadded state, whole, on the default device (a collective across processes)."""
        return jax.tree.map(jnp.asarray, unpad_state(jax.tree.map(host_array, state), self.rows))

    def local_batch_size(self, batch_size: int) -> int:
        """Examples per pipeline batch in this process (``batch_size`` is the global one)."""
        return batch_size // jax.process_count()

    def process_batches(self, batches: Iterable[dict]) -> Iterator[dict]:
        """This process's share of an epoch's batches (all of them with one process)."""
        return process_batches(batches, jax.process_index(), jax.process_count())

    def step(self) -> ShardedStep:
        """The drop-in for ``sgjax.train.train_step_jit`` on the mesh (one per plan)."""
        if self._step is None:
            self._step = ShardedStep(self.mesh)
        return self._step


def gather_row_grads(spec: StepSpec, mesh: Mesh) -> StepSpec:
    """``spec`` with an optimizer whose row gradients are first gathered over the data axis.

    Left to itself, GSPMD applies a scatter-add of batch-sharded rows into a table that is
    replicated over ``"data"`` as a dense all-reduce of the whole table (O(V x N) traffic and
    a table-sized buffer per step). Constraining the rows (index, value) to be replicated
    makes it an all-gather of the M gradient rows (O(M x N)); every data replica then adds
    all rows in batch order, as one device does. Dense gradient leaves (autodiff, the full
    softmax) are constrained to the tables' row sharding. ``spec`` is returned unchanged if
    its optimizer is not a :class:`sgjax.optim.SparseOptimizer`-like named tuple.
    """
    opt = spec.optimizer
    if not hasattr(opt, "_replace") or not hasattr(opt, "update"):
        return spec
    rep, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P(MODEL))
    wsc = jax.lax.with_sharding_constraint

    def constrain(g: Any) -> Any:
        if isinstance(g, RowGrads):
            return RowGrads(wsc(g.index, rep), wsc(g.value, rep))
        return wsc(g, rows) if np.ndim(g) == 2 else g

    def update(grads: Mapping[str, Any], opt_state: Any, params: Any) -> Any:
        return opt.update({k: constrain(g) for k, g in grads.items()}, opt_state, params)

    return dataclasses.replace(spec, optimizer=opt._replace(update=update))


class ShardedStep:
    """``step(state, group, tables, spec) -> (state, metrics)`` like ``train_step_jit``, on a
    mesh: puts the host batch group (and, once, the tables) on the devices and runs
    :func:`sgjax.train.train_step` jitted with explicit in/out shardings (state donated)."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self._compiled: dict[tuple, Any] = {}
        self._tables: tuple[Any, Any] | None = None

    def _cache_size(self) -> int:
        return sum(f._cache_size() for f in self._compiled.values())

    def put_batch(self, group: Mapping[str, Any]) -> dict[str, jax.Array]:
        """The host group (this process's slice of the global batch) as global arrays."""
        n = jax.process_count()
        group = dict(group)
        if n > 1:  # the words of a step are those of all processes' batches
            from jax.experimental import multihost_utils

            words = multihost_utils.process_allgather(np.asarray(group["words"]))
            group["words"] = np.asarray(words).sum(0).astype(np.asarray(group["words"]).dtype)
        out = {}
        for k, s in batch_shardings(group, self.mesh).items():
            x = np.asarray(group[k])
            if np.ndim(x) >= 2:
                shape = (x.shape[0], x.shape[1] * n, *x.shape[2:])
                out[k] = jax.make_array_from_process_local_data(s, x, shape)
            else:
                out[k] = _put(x, s)
        return out

    def put_tables(self, tables: Mapping[str, Any]) -> Any:
        if self._tables is None or self._tables[0] is not tables:
            rep = NamedSharding(self.mesh, P())
            placed = jax.tree.map(lambda x: _put(host_array(x), rep), dict(tables))
            self._tables = (tables, placed)
        return self._tables[1]

    def compiled(self, state: TrainState, batch: Mapping[str, Any], spec: StepSpec) -> Any:
        sh_state = state_shardings(state, self.mesh)
        sh_batch = batch_shardings(batch, self.mesh)
        key = (spec, jax.tree.structure(state), tuple(sorted(sh_batch.items())))
        if key not in self._compiled:
            rep = NamedSharding(self.mesh, P())
            spec_m = gather_row_grads(spec, self.mesh)
            self._compiled[key] = jax.jit(
                lambda st, b, t: train_step(st, b, t, spec_m),
                in_shardings=(sh_state, sh_batch, rep),
                out_shardings=(sh_state, rep),
                donate_argnums=(0,),
            )
        return self._compiled[key]

    def put_state(self, state: TrainState) -> TrainState:
        """``state`` with every leaf on its sharding (the fit loop's host-side updates of the
        counters make single-device scalars; they are replicated again here)."""

        def put(x: Any, s: NamedSharding) -> Any:
            return x if isinstance(x, jax.Array) and x.sharding == s else _put(host_array(x), s)

        return jax.tree.map(put, state, state_shardings(state, self.mesh))

    def __call__(self, state: TrainState, group: Mapping[str, Any], tables: Mapping, spec):
        batch, state = self.put_batch(group), self.put_state(state)
        return self.compiled(state, batch, spec)(state, batch, self.put_tables(tables))


def plan_for(cfg: Config, vocab_size: int) -> Plan | None:
    """The plan of ``cfg.mesh`` for a vocabulary of ``vocab_size`` words, or None for one
    device in one process (then nothing changes: the plain jitted step runs)."""
    if cfg.mesh.data * cfg.mesh.model == 1 and jax.process_count() == 1:
        return None
    rows = {"W": vocab_size, "W_out": output_rows(vocab_size, str(cfg.model.output))}
    m, n = cfg.mesh.model, jax.process_count()
    if str(cfg.model.output) == "softmax" and rows["W_out"] % m:
        raise ConfigError(
            f"mesh.model={m}: model.output=softmax needs the vocabulary size "
            f"({rows['W_out']}) to divide by mesh.model (padding rows would join the "
            "softmax); use mesh.model=1 or a divisor, or hierarchical/negative output"
        )
    if cfg.train.batch_size % cfg.mesh.data or cfg.train.batch_size % n:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} must divide by mesh.data="
            f"{cfg.mesh.data} and by the {n} processes"
        )
    return Plan(make_mesh(cfg.mesh), rows)


def init_sharded_state(
    key: jax.Array,
    vocab_size: int,
    dim: int,
    output: str,
    optimizer: Any,
    plan: Plan,
    dtype: Any = jnp.float32,
) -> TrainState:
    """:func:`sgjax.train.init_state` created on the mesh, padded: each device computes only
    its own rows (no device and not the host holds a whole table). The same values as
    ``plan.place(init_state(...))`` (jax's PRNG gives the same bits on any sharding)."""
    m = plan.model_shards

    def pad(_: str, x: jax.Array) -> jax.Array:
        extra = padded_rows(x.shape[0], m) - x.shape[0]
        return jnp.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1))

    def init(k: jax.Array) -> TrainState:
        state = init_state(k, vocab_size, dim, output, optimizer, dtype)
        return _map_rows(pad, lambda x: x, state)

    shardings = state_shardings(jax.eval_shape(init, key), plan.mesh)
    return jax.jit(init, out_shardings=shardings)(key)


def restore_target(cfg: Config, state: TrainState) -> Any:
    """What to restore a checkpoint of ``cfg`` into: the padded, sharded abstract state of
    ``cfg.mesh`` (``state`` itself, unpadded and unsharded, for one device)."""
    plan = plan_for(cfg, int(np.shape(state.params["W"])[0]))
    return state if plan is None else plan.abstract(state)


def local_config(cfg: Config) -> Config:
    """``cfg`` with this process's pipeline batch size (``batch_size / processes``)."""
    n = jax.process_count()
    if n == 1:
        return cfg
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, batch_size=cfg.train.batch_size // n)
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
