"""Atomic, pickle-free checkpoints of a training run: the TrainState pytree (orbax), the
vocabulary (word2vec.c's ``-save-vocab`` text), the resolved config (YAML) and a small JSON
record of progress.

Layout under ``RUN/checkpoints/``::

    step_00001234/            one complete checkpoint
        state/                orbax StandardCheckpointer directory (arrays, no pickle)
        meta.json             {"step", "epoch", "batch_in_epoch", "words_total", ...}
    LATEST                    the name of the newest complete checkpoint

Atomicity: a checkpoint is written into ``.tmp-step_...`` and renamed into place only when
complete, then ``LATEST`` is replaced atomically (write + fsync + ``os.replace``). A crash at
any moment leaves the previous checkpoint intact and ``LATEST`` pointing at a complete one.
The vocabulary and config of a run never change, so they live once at ``RUN/vocab.txt`` and
``RUN/config.yaml`` (written by the trainer before the first checkpoint).

Sharded states (:mod:`sgjax.sharding`): arrays spread over several devices are handed to
orbax as they are (each shard written once; with several processes every process writes its
own, process 0 alone does the directory work, between barriers), and :func:`restore` puts
every leaf on the sharding of its target leaf, so a checkpoint written on one mesh restores
on any other device count; ``pad_rows=True`` accepts the different (zero-padded) row counts
of the tables on meshes of another size.

Reading a run back: :func:`load_run_state` gives a run directory's vocabulary and newest
checkpointed parameters as numpy arrays (``sgjax export``, ``sgjax report``), without
rebuilding the corpus or the optimizer.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

from sgjax.config import load_config
from sgjax.vocab import Vocab, load_vocab

LATEST = "LATEST"


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


def save(run_dir: str | os.PathLike, state: Any, meta: dict, keep: int = 2) -> Path:
    """Save ``state`` (any pytree of arrays) and ``meta`` atomically; keep the newest ``keep``.

    Returns the checkpoint's directory. With several processes (``jax.distributed``) every
    process calls it with the same ``run_dir`` on a shared file system: all write their
    shards of ``state``, process 0 alone does the directory work and ``meta.json``.
    """
    import orbax.checkpoint as ocp

    primary = jax.process_index() == 0
    final = path_of(run_dir, meta)
    root, name = final.parent, final.name
    tmp = root / f".tmp-{name}"
    if primary:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    _barrier(f"sgjax-ckpt-prepare-{name}")
    state = jax.tree.map(_to_save, state)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save((tmp / "state").absolute(), state)
    ckptr.wait_until_finished()
    ckptr.close()
    _barrier(f"sgjax-ckpt-written-{name}")
    if primary:
        meta = {**meta, "files_sha256": _digests(tmp / "state")}  # checked on restore
        write_text_atomic(tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True))
        if final.exists():  # the same step saved twice (e.g. epoch end == N-step boundary)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        write_text_atomic(root / LATEST, name + "\n")
        for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(f"sgjax-ckpt-done-{name}")
    return final


def path_of(run_dir: str | os.PathLike, meta: dict) -> Path:
    """The directory :func:`save` writes the checkpoint of ``meta["step"]`` to."""
    return Path(run_dir) / "checkpoints" / f"step_{int(meta['step']):010d}"


class Saver:
    """:func:`save` for a training loop, in the background: ``save`` copies the state to
    host memory (the device buffers are donated to the next step) and writes it in a
    thread while training goes on, one checkpoint at a time; ``wait`` finishes the pending
    one (raising its error) and gives the newest complete checkpoint. With
    ``background=False`` (several devices or processes: the write is collective) every
    save is synchronous. Atomicity is :func:`save`'s: a crash mid-write leaves the previous
    checkpoint and ``LATEST`` intact."""

    def __init__(self, run_dir: str | os.PathLike, background: bool = True) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.run_dir = Path(run_dir)
        self.latest = latest(self.run_dir)
        self._pool = ThreadPoolExecutor(1, "sgjax-checkpoint") if background else None
        self._pending: Any = None

    def save(self, state: Any, meta: dict, wait: bool = False) -> Path:
        """Start saving ``state``; with ``wait`` (or no background) return once written."""
        self.wait()
        if self._pool is None or wait:
            self.latest = save(self.run_dir, state, meta)
            return self.latest
        host = jax.tree.map(lambda x: np.array(x, copy=True), state)
        self._pending = self._pool.submit(save, self.run_dir, host, meta)
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
    root = Path(run_dir) / "checkpoints"
    try:
        name = (root / LATEST).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = root / name
    if not (path / "meta.json").is_file():
        raise FileNotFoundError(f"{root / LATEST} names {name!r}, which is incomplete or missing")
    return path


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
    """The run's complete checkpoints (those with a ``meta.json``), newest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("step_*") if (p / "meta.json").is_file()), reverse=True)


def restore_newest(
    run_dir: str | os.PathLike, target: Any, *, pad_rows: bool = False, on_skip: Any = None
) -> tuple[Any, dict, Path]:
    """:func:`restore` the newest readable checkpoint of a run: ``(state, meta, path)``.

    A checkpoint that ``LATEST`` names but is missing, or that fails to restore (a corrupt
    file, a shape that no longer matches), is skipped for the next older complete one;
    ``on_skip(path, reason)`` is told of each. Raises FileNotFoundError when there is none,
    or the newest one's error when none restores."""
    root = Path(run_dir) / "checkpoints"
    found = candidates(run_dir)
    try:
        named = (root / LATEST).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        named = None
    if named and found and root / named != found[0] and on_skip is not None:
        on_skip(root / named, "LATEST names it, but it is incomplete or missing")
    if not found:
        raise FileNotFoundError(f"{root}: no complete checkpoint to resume from")
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

    path = Path(path)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    meta.pop("files_sha256", None)  # save's own record (verify), not the caller's
    abstract = jax.tree.map(_abstract, target)
    ckptr = ocp.StandardCheckpointer()
    try:
        try:
            saved = ckptr.metadata((path / "state").absolute()).item_metadata
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

    from sgjax.params import table_rows

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    path = latest(run)
    if path is None:
        raise FileNotFoundError(f"{run / 'checkpoints'}: no checkpoint in this run directory")
    vocab_path = run / "vocab.txt"
    if not vocab_path.is_file():
        raise FileNotFoundError(f"{vocab_path}: the run's vocabulary is missing")
    vocab = load_vocab(vocab_path)
    state_dir = (path / "state").absolute()
    ckptr = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    try:
        tree = ckptr.metadata(state_dir).item_metadata.tree
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
