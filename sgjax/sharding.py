"""Sharded training with ``jax.sharding``: a (data x model) device mesh, one or many hosts.

Nothing here changes the training algorithm: :func:`sgjax.train.train_step` runs unchanged
under ``jax.jit`` with input and output shardings, and XLA's SPMD partitioner (GSPMD)
splits the program over the devices. A jitted program means the same on any sharding, so a
sharded run computes the same function as a one-device run; only the order of
floating-point sums can differ (below). The mesh, the processes, the row padding and the
shardings of a state are set up in :mod:`sgjax.mesh` (its names are re-exported here);
this module holds a run's :class:`Plan` and its sharded step.

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
pipeline cuts one stream of examples into batches). With ``train.window_buckets`` a batch's
rows are grouped by window, so each process makes the whole batches and keeps its rows
(:func:`local_batches`). ``words`` counts are summed over the
processes. Each process must own whole rows of the data axis (``mesh.model`` divides the
local device count). Only process 0 writes files (:func:`is_primary`); checkpoints are
written by all processes together (orbax).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sgjax.config import Config, ConfigError
from sgjax.mesh import (
    AXES,
    DATA,
    MODEL,
    TABLES,
    _map_rows,
    _put,
    batch_shardings,
    bytes_per_device,
    check_process_blocks,
    distributed_args,
    host_array,
    initialize_distributed,
    is_primary,
    make_mesh,
    pad_state,
    padded_rows,
    process_batches,
    process_rows,
    state_shardings,
    unpad_state,
)
from sgjax.outputs import lookup
from sgjax.params import table_rows
from sgjax.sparse import RowGrads
from sgjax.train import StepSpec, TrainState, init_state, train_step

__all__ = [
    "AXES",
    "DATA",
    "MODEL",
    "TABLES",
    "Plan",
    "ShardedStep",
    "batch_shardings",
    "bytes_per_device",
    "check_process_blocks",
    "distributed_args",
    "gather_row_grads",
    "host_array",
    "init_sharded_state",
    "initialize_distributed",
    "is_primary",
    "local_config",
    "make_mesh",
    "pad_state",
    "padded_rows",
    "plan_for",
    "process_batches",
    "process_rows",
    "local_batches",
    "restore_target",
    "state_shardings",
    "unpad_state",
]


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
    softmax) are constrained to the tables' row sharding. The wrapped ``update`` returns
    ``(updates, opt_state)`` as the optimizer's own does (:func:`sgjax.optim.apply_updates`
    makes the step). ``spec`` is returned unchanged if its optimizer is not a
    :class:`sgjax.optim.SparseOptimizer`-like named tuple.
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

    def update(grads: Mapping[str, Any], opt_state: Any, params: Any) -> tuple[Any, Any]:
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
    rows = table_rows(vocab_size, str(cfg.model.output))
    m, n = cfg.mesh.model, jax.process_count()
    layer = lookup(str(cfg.model.output))
    uneven = {k: r for k, r in layer.tables(vocab_size).items() if r % m}
    if layer.dense and uneven:
        raise ConfigError(
            f"mesh.model={m}: model.output={cfg.model.output} needs the vocabulary size "
            f"({', '.join(map(str, uneven.values()))} rows) to divide by mesh.model (padding "
            "rows would join the softmax's normaliser); use mesh.model=1 or a divisor, or an "
            "output layer that reads only its sampled or path rows"
        )
    if cfg.train.batch_size % cfg.mesh.data or cfg.train.batch_size % n:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} must divide by mesh.data="
            f"{cfg.mesh.data} and by the {n} processes: set train.batch_size to a multiple "
            f"of {math.lcm(cfg.mesh.data, n)} (and of model.window with train.window_buckets)"
        )
    mesh = make_mesh(cfg.mesh)
    if n > 1 and cfg.train.window_buckets:
        check_process_blocks(mesh)
    return Plan(mesh, rows)


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
    """``cfg`` with this process's pipeline batch size (``batch_size / processes``); with
    ``train.window_buckets`` the whole batch (its rows are grouped by window: each process
    makes every batch and keeps its rows, :func:`local_batches`)."""
    n = jax.process_count()
    if n == 1 or cfg.train.window_buckets:
        return cfg
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, batch_size=cfg.train.batch_size // n)
    )


def local_batches(cfg: Config, batches: Iterable[dict]) -> Iterator[dict]:
    """This process's share of an epoch's batches of :func:`local_config`: every P-th
    batch (:func:`process_batches`), or with ``train.window_buckets`` its rows of every
    batch (:func:`process_rows`); all of them with one process."""
    index, count = jax.process_index(), jax.process_count()
    if count == 1:
        return iter(batches)
    if cfg.train.window_buckets:
        return process_rows(batches, index, count)
    return process_batches(batches, index, count)
