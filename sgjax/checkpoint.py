"""Atomic, pickle-free checkpoints of a training run: the TrainState pytree (orbax), the
vocabulary (word2vec.c's ``-save-vocab`` text), the resolved config (YAML) and a small JSON
record of progress.

Layout under ``RUN/checkpoints/`` (an orbax ``CheckpointManager`` directory)::

    step_0000001234/          one complete checkpoint (orbax's step_prefix="step", 10 digits)
        state/                the TrainState: orbax StandardCheckpointHandler (no pickle)
        meta.json             {"step", "epoch", "batch_in_epoch", "words_total", ...,
                              "files_sha256": sha256 of every file of state/}
        _CHECKPOINT_METADATA, commit_success.txt    orbax's own records

Orbax does the directory work: each checkpoint is written into
``step_....orbax-checkpoint-tmp`` and renamed into place only when complete (a crash at any
moment leaves the previous checkpoints intact; unfinished directories are removed by the
next save), and it deletes old checkpoints after each save, keeping the newest ``keep``
plus those saved with ``keep_forever`` (``train.keep_checkpoints``,
``train.keep_epoch_checkpoints``: orbax's ``LatestN`` or ``CustomSteps`` preservation
policies; ``"keep_forever": true`` in meta.json remembers them across sessions).
``meta.json`` is written by the state's handler at orbax's finalize step, after every
process's arrays are written and before the commit, so it is part of the atomic checkpoint;
its sha256 digests let :func:`restore_newest` skip a damaged newest checkpoint for an older
one. The newest complete checkpoint is the highest step with a ``meta.json``.

Kept by hand, as orbax cannot do it: orbax refuses to save a step that exists (an epoch's
end on an N-step boundary saves the same step twice, or a resume from an older checkpoint
after a damaged newest one). The existing directory is renamed to ``step_....replaced``
first and deleted after the commit; until then :func:`candidates` still offers it, so a
crash mid-write never leaves a run without the checkpoint it had.

Runs written before orbax's manager (the same ``state/`` and ``meta.json`` per step, and a
``LATEST`` file) are read as they are; the next save joins them to the rotation and removes
``LATEST``. The vocabulary and config of a run never change, so they live once at
``RUN/vocab.txt`` and ``RUN/config.yaml`` (written by the trainer before the first
checkpoint).

Sharded states (:mod:`sgjax.sharding`): arrays spread over several devices are handed to
orbax as they are (each shard written once; with several processes every process writes its
own, process 0 alone does the directory work), and :func:`restore` puts every leaf on the
sharding of its target leaf, so a checkpoint written on one mesh restores on any other
device count; ``pad_rows=True`` accepts the different (zero-padded) row counts of the
tables on meshes of another size.

Reading a run back: :func:`load_run_state` gives a run directory's vocabulary and newest
checkpointed parameters as numpy arrays (``sgjax export``, ``sgjax report``), without
rebuilding the corpus or the optimizer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from sgjax.ckpt_manager import ORBAX_TMP, save_step
from sgjax.config import load_config
from sgjax.vocab import Vocab, load_vocab

LATEST = "LATEST"  # the newest checkpoint's name, in runs written before orbax's manager
REPLACED = ".replaced"  # a step's old directory while the same step is written again


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or a signal: no partial file is left
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _to_save(x: Any) -> Any:
    """Arrays on one device go to the host (as before); arrays sharded over several devices
    (:mod:`sgjax.sharding`) are handed to orbax as they are, which writes each shard once."""
    if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
        return x
    return jax.device_get(x)


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _step_of(path: Path) -> int | None:
    """The step of a checkpoint directory's name (its ``.replaced`` copy too), else None."""
    m = re.fullmatch(r"step_(\d+)", path.name.removesuffix(REPLACED))
    return int(m.group(1)) if m else None


def _seal(state_dir: Path, meta: dict) -> None:
    """Write the checkpoint's ``meta.json`` beside ``state_dir`` (orbax's temporary step
    directory, before the commit: :mod:`sgjax.ckpt_manager`), with the sha256 of every file
    of ``state_dir``, which :func:`verify` checks."""
    meta = {**meta, "files_sha256": _digests(state_dir)}
    write_text_atomic(state_dir.parent / "meta.json", json.dumps(meta, indent=1, sort_keys=True))


def save(
    run_dir: str | os.PathLike,
    state: Any,
    meta: dict,
    keep: int = 2,
    keep_forever: bool = False,
) -> Path:
    """Save ``state`` (any pytree of arrays) and ``meta`` atomically, as checkpoint step
    ``meta["step"]``; then keep the newest ``keep`` checkpoints and those saved with
    ``keep_forever`` (delete the others).

    Returns the checkpoint's directory. With several processes (``jax.distributed``) every
    process calls it with the same ``run_dir`` on a shared file system: all write their
    shards of ``state``, process 0 alone does the directory work and ``meta.json``.
    """
    if keep < 1:
        raise ValueError(f"keep={keep}: at least the newest checkpoint must be kept")
    primary = jax.process_index() == 0
    final = path_of(run_dir, meta)
    root, step = final.parent, int(meta["step"])
    aside = final.with_name(final.name + REPLACED)
    if primary:
        root.mkdir(parents=True, exist_ok=True)
        if final.exists():  # the same step again: orbax refuses it, so set the old one aside
            if aside.exists():
                shutil.rmtree(aside)
            os.replace(final, aside)
    _barrier(f"sgjax-ckpt-prepare-{final.name}")
    forever = _kept_forever(Path(run_dir)) + ([step] if keep_forever else [])
    meta = {**meta, "keep_forever": True} if keep_forever else dict(meta)
    state = jax.tree.map(_to_save, state)
    save_step(root, step, state, keep=keep, forever=forever, seal=lambda d: _seal(d, meta))
    if primary:
        _fsync_dir(root)
        for old in root.glob(f"step_*{REPLACED}"):  # set aside before; superseded now
            shutil.rmtree(old, ignore_errors=True)
        (root / LATEST).unlink(missing_ok=True)  # the pointer of the layout before orbax's
    _barrier(f"sgjax-ckpt-done-{final.name}")
    return final


def _kept_forever(run_dir: Path) -> list[int]:
    """The steps of the run's complete checkpoints that were saved with keep_forever."""
    out = []
    for path in candidates(run_dir):
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("keep_forever") is True:
            out.append(_step_of(path))
    return out


def path_of(run_dir: str | os.PathLike, meta: dict) -> Path:
    """The directory :func:`save` writes the checkpoint of ``meta["step"]`` to."""
    return Path(run_dir) / "checkpoints" / f"step_{int(meta['step']):010d}"


def _epoch_end(meta: dict) -> bool:
    """Whether ``meta`` (experiment's progress record) is that of an epoch's end: the only
    checkpoint at batch 0 of an epoch after the first (N-step and interrupt checkpoints
    come after a step, so at batch 1 or later)."""
    return meta.get("batch_in_epoch") == 0 and int(meta.get("epoch") or 0) >= 1


class Saver:
    """:func:`save` for a training loop, in the background: ``save`` copies the state to
    host memory (the device buffers are donated to the next step) and writes it in a
    thread while training goes on, one checkpoint at a time; ``wait`` finishes the pending
    one (raising its error) and gives the newest complete checkpoint. With
    ``background=False`` (several devices or processes: the write is collective) every
    save is synchronous. Atomicity is :func:`save`'s: a crash mid-write leaves the previous
    checkpoints intact.

    ``keep`` newest checkpoints are kept (``train.keep_checkpoints``); with ``keep_epochs``
    (``train.keep_epoch_checkpoints``) every epoch-end checkpoint is kept too: those saved
    with ``keep_forever=True``, or, when ``save`` is not told, whose ``meta`` is an epoch's
    end (``batch_in_epoch`` 0 in an epoch after the first)."""

    def __init__(
        self,
        run_dir: str | os.PathLike,
        background: bool = True,
        keep: int = 2,
        keep_epochs: bool = False,
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if keep < 1:
            raise ValueError(f"keep={keep}: at least the newest checkpoint must be kept")
        self.run_dir, self.keep, self.keep_epochs = Path(run_dir), keep, keep_epochs
        self.latest = latest(self.run_dir)
        self._pool = ThreadPoolExecutor(1, "sgjax-checkpoint") if background else None
        self._pending: Any = None

    def save(
        self, state: Any, meta: dict, wait: bool = False, keep_forever: bool | None = None
    ) -> Path:
        """Start saving ``state``; with ``wait`` (or no background) return once written.
        ``keep_forever`` (default: ``keep_epochs`` and ``meta`` an epoch's end) exempts the
        checkpoint from deletion."""
        self.wait()
        if keep_forever is None:
            keep_forever = self.keep_epochs and _epoch_end(meta)
        kw = {"keep": self.keep, "keep_forever": bool(keep_forever)}
        if self._pool is None or wait:
            self.latest = save(self.run_dir, state, meta, **kw)
            return self.latest
        host = jax.tree.map(lambda x: np.array(x, copy=True), state)
        self._pending = self._pool.submit(save, self.run_dir, host, meta, **kw)
        return path_of(self.run_dir, meta)

    def wait(self, raise_errors: bool = True) -> Path | None:
        """The newest complete checkpoint, once the pending write (if any) is done."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                self.latest = pending.result()
            except Exception:
                if raise_errors:
                    raise
        return self.latest


def latest(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run, or None if it has none."""
    found = candidates(run_dir)
    return found[0] if found else None


def _digests(state_dir: Path) -> dict[str, str]:
    """sha256 of every file orbax wrote, by path relative to ``state_dir``."""
    import hashlib

    out = {}
    for f in sorted(p for p in state_dir.rglob("*") if p.is_file()):
        with open(f, "rb") as fh:
            out[str(f.relative_to(state_dir))] = hashlib.file_digest(fh, "sha256").hexdigest()
    return out


def verify(path: str | os.PathLike) -> str | None:
    """Why the checkpoint at ``path`` is damaged (a file missing or differing from the
    sha256 its ``meta.json`` records), or None if it is intact (or records no digests)."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"meta.json is unreadable ({e})"
    want = meta.get("files_sha256") if isinstance(meta, dict) else None
    if not isinstance(want, dict):
        return None
    have = _digests(path / "state")
    for name, digest in want.items():
        if have.get(name) != digest:
            return f"state/{name} is {'missing' if name not in have else 'corrupt (sha256)'}"
    return None


def candidates(run_dir: str | os.PathLike) -> list[Path]:
    """The run's complete checkpoints (those with a ``meta.json``), newest first: orbax's
    committed steps, and a step's ``.replaced`` copy while its new write is unfinished."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found: dict[int, Path] = {}
    for p in root.iterdir():
        step = _step_of(p)
        if step is None or not (p / "meta.json").is_file():
            continue
        if step not in found or found[step].name.endswith(REPLACED):  # the new one wins
            found[step] = p
    return [found[s] for s in sorted(found, reverse=True)]


def restore_newest(
    run_dir: str | os.PathLike, target: Any, *, pad_rows: bool = False, on_skip: Any = None
) -> tuple[Any, dict, Path]:
    """:func:`restore` the newest readable checkpoint of a run: ``(state, meta, path)``.

    A checkpoint that fails to restore (a corrupt file, a shape that no longer matches) is
    skipped for the next older complete one; ``on_skip(path, reason)`` is told of each, and
    of unfinished writes newer than the checkpoint restored. Raises FileNotFoundError when
    there is none, or the newest one's error when none restores."""
    root = Path(run_dir) / "checkpoints"
    found = candidates(run_dir)
    if not found:
        raise FileNotFoundError(f"{root}: no complete checkpoint to resume from")
    if on_skip is not None:
        for p in sorted(root.glob(f"step_*{ORBAX_TMP}*"), reverse=True):
            if int(p.name[5:].split(".")[0]) >= _step_of(found[0]):
                on_skip(p, "an unfinished write (never committed)")
    first_error: Exception | None = None
    for path in found:
        try:
            damage = verify(path)
            if damage is not None:
                raise ValueError(damage)
            state, meta = restore(path, target, pad_rows=pad_rows)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: try the older one
            first_error = first_error or e
            if on_skip is not None:
                reason = " ".join(str(e).split()) or type(e).__name__
                on_skip(path, reason if len(reason) < 300 else reason[:297] + "...")
            continue
        return state, meta, path
    assert first_error is not None
    raise first_error


def _sharded(x: Any) -> bool:
    sharding = getattr(x, "sharding", None)
    return isinstance(sharding, jax.sharding.Sharding) and len(sharding.device_set) > 1


def _abstract(x: Any) -> Any:
    """The restore target of one leaf: a ShapeDtypeStruct with the leaf's sharding when it
    spans several devices (orbax restores onto it), else a host array template (restored
    as numpy, as a one-device state always was)."""
    if _sharded(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return np.empty(x.shape, x.dtype)  # lazily allocated: a template, never written


def _fit_rows(x: Any, shape: tuple) -> Any:
    """Numpy ``x`` cut or zero-padded in its leading dimension to ``shape``."""
    if not isinstance(x, np.ndarray) or x.shape == tuple(shape):
        return x
    x = x[: shape[0]]
    return np.concatenate([x, np.zeros((shape[0] - x.shape[0], *x.shape[1:]), x.dtype)])


def _names(path: tuple) -> tuple:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _check_shapes(saved: Any, target: Any, pad_rows: bool) -> None:
    """Refuse a target whose shapes differ from the checkpoint's (other than in rows when
    ``pad_rows``), naming the leaf; orbax would otherwise pad or truncate silently."""
    have = {_names(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(saved)[0]}
    for p, x in jax.tree_util.tree_flatten_with_path(target)[0]:
        want, got = tuple(x.shape), have.get(_names(p))
        if got is None or got == want:
            continue  # a structural mismatch is orbax's to report
        rows_only = pad_rows and len(got) == len(want) >= 1 and got[1:] == want[1:]
        if not rows_only:
            raise ValueError(
                f"checkpoint leaf {jax.tree_util.keystr(p)} has shape {got}, the target "
                f"{want}" + ("" if pad_rows else " (pad_rows=True allows other row counts)")
            )


def restore(path: str | os.PathLike, target: Any, *, pad_rows: bool = False) -> tuple[Any, dict]:
    """Restore ``(state, meta)`` from a checkpoint directory into the structure of ``target``
    (a pytree of arrays or ShapeDtypeStructs with the same structure, shapes and dtypes).

    A leaf whose target spans several devices (a ``ShapeDtypeStruct``'s ``sharding`` or a
    ``jax.Array``'s) is restored onto that sharding, any other leaf as a numpy array, so a
    checkpoint written on one mesh restores onto any other device count. ``pad_rows=True``
    also allows leaves whose leading dimension differs (the zero padding rows of
    :mod:`sgjax.sharding` tables): rows are appended as zeros or truncated from the end.
    """
    import orbax.checkpoint as ocp
    from etils import epath

    path = Path(path)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    for key in ("files_sha256", "keep_forever"):  # save's own records, not the caller's
        meta.pop(key, None)
    abstract = jax.tree.map(_abstract, target)
    ckptr = ocp.StandardCheckpointer()
    try:
        try:
            # (the handler's: the step's own metadata is beside state/, not in it)
            saved = ckptr.handler.metadata(epath.Path((path / "state").absolute()))
        except Exception:  # noqa: BLE001 - no metadata: orbax checks what it can
            saved = None
        if saved is not None:
            _check_shapes(saved, abstract, pad_rows)
        state = ckptr.restore((path / "state").absolute(), abstract, strict=not pad_rows)
    finally:
        ckptr.close()
    if pad_rows:  # orbax pads / truncates sharded leaves itself, not host (numpy) ones
        state = jax.tree.map(lambda x, t: _fit_rows(x, t.shape), state, abstract)
    return state, meta


def _saved_output(config_path: Path) -> str:
    """``model.output`` of a run's config.yaml, read without validating the whole config
    (whose checks, such as float64 needing JAX's x64 mode, are for training)."""
    import yaml

    try:
        return str(yaml.safe_load(config_path.read_text(encoding="utf-8"))["model"]["output"])
    except (KeyError, TypeError, yaml.YAMLError):
        return str(load_config(config_path).model.output)


def load_run_state(run_dir: str | os.PathLike) -> tuple[Vocab, dict[str, np.ndarray], dict]:
    """``(vocab, params, meta)`` of a run directory's newest checkpoint: its vocabulary
    (``vocab.txt``), the parameters ``{"W": (V, N), "W_out": (V, N) or (V-1, N)}`` as numpy
    arrays and the checkpoint's progress record (``meta.json``).

    Only ``params`` are read from the checkpoint (an orbax partial restore whose shapes and
    dtypes come from the checkpoint's own metadata): neither the corpus nor the optimizer is
    rebuilt, so it is quick and works on an unfinished or interrupted run. The zero padding
    rows that sharded runs store (:mod:`sgjax.sharding`) are dropped, using the table sizes
    that the vocabulary and ``config.yaml``'s ``model.output`` give. Raises
    FileNotFoundError naming the missing run directory, checkpoint or vocabulary, and
    ValueError if the checkpoint and the vocabulary disagree.
    """
    import orbax.checkpoint as ocp
    from etils import epath

    from sgjax.params import table_rows

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    path, found = None, candidates(run)
    for p in found:  # the newest intact one, as a resume would take (warned)
        if (damage := verify(p)) is None:
            path = p
            break
        print(f"sgjax: warning: skipping checkpoint {p}: {damage}", file=sys.stderr)
    if path is None:
        what = "no intact checkpoint" if found else "no checkpoint"
        raise FileNotFoundError(f"{run / 'checkpoints'}: {what} in this run directory")
    vocab_path = run / "vocab.txt"
    if not vocab_path.is_file():
        raise FileNotFoundError(f"{vocab_path}: the run's vocabulary is missing")
    vocab = load_vocab(vocab_path)
    state_dir = (path / "state").absolute()
    ckptr = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    try:
        tree = ckptr.handler.metadata(epath.Path(state_dir)).tree
        if not isinstance(tree, dict) or not isinstance(tree.get("params"), dict):
            raise ValueError(f"{state_dir}: the checkpoint holds no 'params'")
        item = {
            "params": {
                k: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype) for k, m in tree["params"].items()
            }
        }
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
        got = ckptr.restore(
            state_dir,
            args=ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True),
        )
    finally:
        ckptr.close()
    params = {k: np.asarray(v) for k, v in got["params"].items()}
    V = len(vocab)
    rows = {"W": V}
    if (run / "config.yaml").is_file():
        rows = table_rows(V, _saved_output(run / "config.yaml"))
    for k, n in rows.items():
        x = params.get(k)
        if x is None or x.ndim != 2 or x.shape[0] < n or np.any(x[n:]):
            shape = None if x is None else x.shape
            raise ValueError(
                f"{path}: {k} of shape {shape} does not match the {V} words of {vocab_path}"
                + ("" if k == "W" else f" ({n} rows for model.output in config.yaml)")
            )
        params[k] = x[:n]  # without the zero padding rows of a sharded run, if any
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    return vocab, params, meta
