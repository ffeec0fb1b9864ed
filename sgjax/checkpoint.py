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
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax

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
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save(run_dir: str | os.PathLike, state: Any, meta: dict, keep: int = 2) -> Path:
    """Save ``state`` (any pytree of arrays) and ``meta`` atomically; keep the newest ``keep``.

    Returns the checkpoint's directory.
    """
    import orbax.checkpoint as ocp

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{int(meta['step']):010d}"
    final, tmp = root / name, root / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    state = jax.device_get(state)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save((tmp / "state").absolute(), state)
    ckptr.wait_until_finished()
    ckptr.close()
    write_text_atomic(tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True))
    if final.exists():  # the same step saved twice (e.g. epoch end == N-step boundary)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    write_text_atomic(root / LATEST, name + "\n")
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


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


def restore(path: str | os.PathLike, target: Any) -> tuple[Any, dict]:
    """Restore ``(state, meta)`` from a checkpoint directory into the structure of ``target``
    (a pytree of arrays or ShapeDtypeStructs with the same structure, shapes and dtypes)."""
    import orbax.checkpoint as ocp

    path = Path(path)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target)
    ckptr = ocp.StandardCheckpointer()
    try:
        state = ckptr.restore((path / "state").absolute(), abstract)
    finally:
        ckptr.close()
    return state, meta
