"""Integrity of a run directory: one writer at a time, no silent overwrite, and a resume
that refuses a vocabulary, corpus or config that changed since the checkpoint.

- :func:`lock` holds an exclusive ``fcntl.flock`` on ``RUN/.lock`` for the whole run, so a
  second ``sgjax train --out RUN`` (fresh or ``--resume``) stops with :class:`RunDirError`
  before it reads or writes anything. The kernel drops the lock when the process dies, so a
  killed run never leaves a stale lock behind.
- :func:`check_fresh` refuses to start a new run in a directory that holds any file of an
  old one (config, vocabulary, metrics, vectors, scores, checkpoints), even when its
  checkpoints are gone; ``overwrite=True`` removes them first (the encoded-corpus cache,
  keyed by its own manifest, is kept).
- :func:`fingerprint` records, in every checkpoint's ``meta.json``, the resolved config,
  the vocabulary's sha256 and each corpus file's size, mtime and a sha256 of sampled
  blocks; :func:`check_fingerprint` compares them on resume, file by file in the corpus's
  order, and names what changed. A file whose mtime or resolved path alone changed
  (``touch``, a copy, a moved project, another venv's copy of the shipped corpus) passes
  with a warning: its size and sampled content are what decide. Sampling reads at most
  ~4 MiB a file, so a resume of a 100 GB corpus starts at once; an edit that keeps the size
  and misses every sampled block goes unseen (the price of not hashing the whole corpus).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

LOCK = ".lock"
#: What a run writes into its directory (experiment.train), besides the encoded-corpus cache.
#: (glob patterns: vectors.* covers sgjax export's files too; figures/ is sgjax report's)
RUN_FILES = (
    "config.yaml",
    "vocab.txt",
    "metrics.jsonl",
    "vectors.*",
    "scores.json",
    "checkpoints",
    "tensorboard",
    "figures",
)
#: Config keys (dotted prefixes) that may change between a checkpoint and its resume: where
#: the run is placed (the mesh: a checkpoint restores onto any device count), what is
#: evaluated, logged and kept, and caches. Any other change is refused.
MAY_CHANGE = (
    "mesh.",
    "eval.",
    "data.cache_dir",
    "train.compile_cache",
    "train.log_every_steps",
    "train.log_to",
    "train.keep_checkpoints",
    "train.keep_epoch_checkpoints",
    "train.checkpoint_every_steps",
    "train.checkpoint_every_seconds",
)
SAMPLE_BLOCKS, BLOCK_BYTES = 32, 64 << 10  # plus the first and last MiB


class RunDirError(ValueError):
    """The run directory is locked, holds another run, or no longer matches its checkpoint."""


def _run_dir(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a Path; RunDirError if it names an existing file."""
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise RunDirError(f"{run}: --out names an existing file, not a run directory")
    return run


@contextlib.contextmanager
def lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``RUN/.lock`` exclusively (creating ``RUN``) for the ``with`` block."""
    import fcntl

    run = _run_dir(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            raise RunDirError(
                f"{run}: another sgjax process (pid {holder}) is writing this run directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield run
    finally:
        os.close(fd)  # releases the lock


def check_fresh(run_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse (RunDirError) a new run in ``run_dir`` if it holds an old run's files; with
    ``overwrite`` delete them instead."""
    run = _run_dir(run_dir)
    found = [p.name for pattern in RUN_FILES for p in sorted(run.glob(pattern))]
    if not found:
        return
    if not overwrite:
        raise RunDirError(
            f"{run} already holds a run ({', '.join(found)}); continue it with --resume, "
            "replace it with --overwrite, or choose another --out"
        )
    for name in found:
        p = run / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _sampled_sha256(path: Path, size: int) -> str:
    """sha256 of the first and last MiB and ``SAMPLE_BLOCKS`` evenly spaced blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= 2 * (1 << 20) + SAMPLE_BLOCKS * BLOCK_BYTES:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            return h.hexdigest()
        starts = [0, size - (1 << 20)]
        starts += [(size * (i + 1)) // (SAMPLE_BLOCKS + 1) for i in range(SAMPLE_BLOCKS)]
        for start in sorted(starts):
            f.seek(start)
            h.update(f.read(1 << 20 if start in (0, size - (1 << 20)) else BLOCK_BYTES))
    return h.hexdigest()


def corpus_fingerprint(files: Sequence[str | os.PathLike]) -> list[dict]:
    """Per corpus file: resolved path, size, mtime (ns) and the sampled sha256."""
    out = []
    for p in map(Path, files):
        st = p.stat()
        out.append(
            {
                "path": str(p.resolve()),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sampled_sha256": _sampled_sha256(p, st.st_size),
            }
        )
    return out


def fingerprint(config_yaml: str, vocab_sha256: str, files: Sequence[str | os.PathLike]) -> dict:
    """What a checkpoint's ``meta.json`` records of its run (module docstring)."""
    return {
        "config": config_yaml,
        "vocab_sha256": vocab_sha256,
        "corpus": corpus_fingerprint(files),
    }


def _flat(d: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_changes(saved: str, now: str) -> list[str]:
    """``key (old -> new)`` for every key that differs between two config YAMLs, but those
    of :data:`MAY_CHANGE` and, when ``now`` records a continuation of ``saved``
    (:mod:`sgjax.continuation`: its ``train.extended`` extends the saved one), the epochs."""
    a, b = _flat(yaml.safe_load(saved) or {}), _flat(yaml.safe_load(now) or {})
    # a key added to sgjax since the checkpoint was written is unchanged at an empty default
    added = {k for k in b.keys() - a.keys() if b[k] in (None, [], {})}
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in added)
    old, new = a.get("train.extended") or [], b.get("train.extended") or []
    if len(new) > len(old) and new[: len(old)] == old:
        keys = [k for k in keys if k not in ("train.epochs", "train.extended")]
    return [f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in keys if not k.startswith(MAY_CHANGE)]


def check_fingerprint(saved: dict | None, now: dict, where: str) -> None:
    """Raise RunDirError naming what differs between a checkpoint's fingerprint and the
    run's files now (``where`` names the checkpoint). Checkpoints written before
    fingerprints existed (``saved`` None) pass."""
    if not saved:
        return
    problems = []
    changes = config_changes(saved.get("config") or "{}", now["config"])
    if saved.get("config") and changes:
        problems.append("config.yaml changed: " + ", ".join(changes[:5]))
    if saved.get("vocab_sha256") not in (None, now["vocab_sha256"]):
        problems.append("vocab.txt changed")
    old, new = saved.get("corpus", []), now["corpus"]
    if len(old) != len(new):
        problems.append(f"the corpus has {len(new)} file(s), it had {len(old)}")
    notes = []
    for o, c in zip(old, new, strict=False):  # file by file, in the corpus's order
        path = c["path"]
        if o["size"] != c["size"]:
            problems.append(
                f"corpus file {path} changed size ({o['size']:,} -> {c['size']:,} bytes)"
            )
        elif o["sampled_sha256"] != c["sampled_sha256"]:
            problems.append(f"corpus file {path} changed content (sampled sha256)")
        else:  # the same content: a moved project, another venv's copy, a touch
            if o["path"] != path:
                notes.append(f"corpus file {o['path']} is now read from {path}")
            if o["mtime_ns"] != c["mtime_ns"]:
                notes.append(f"corpus file {path} has a new mtime")
    if notes and not problems:
        print(
            f"sgjax: warning: {'; '.join(notes)}; its size and sampled content are "
            "unchanged, so the run continues",
            file=sys.stderr,
        )
    if problems:
        raise RunDirError(
            f"cannot resume from {where}: "
            + "; ".join(problems)
            + " since it was written (restore the files, or start a new run)"
        )
