"""orbax's ``CheckpointManager`` as :mod:`sgjax.checkpoint` writes with it: one item,
``state`` (orbax's StandardCheckpointHandler), in step directories ``step_0000001234``,
written synchronously (the caller's thread is the background), keeping the newest ``keep``
steps and the steps ``forever`` (orbax's ``LatestN`` and ``CustomSteps`` preservation
policies), and sealed: ``seal(state_dir)`` runs at the handler's finalize step, on process 0
once every process's arrays are written, before orbax commits the step by renaming its
temporary directory, so whatever it writes beside ``state/`` is part of the atomic commit.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: the suffix of the temporary directory orbax writes a step into before its commit
ORBAX_TMP = ".orbax-checkpoint-tmp"


def _sealing_handler(seal: Callable[[Path], None]) -> Any:
    import orbax.checkpoint as ocp
    from orbax.checkpoint._src.handlers import pytree_checkpoint_handler

    class SealingHandler(ocp.StandardCheckpointHandler):
        def __init__(self) -> None:
            super().__init__()
            # uncompressed: zstd shrinks trained float tables by ~8 % for ~0.15 s of CPU
            # per realtext-v1 checkpoint, taken from the training it runs beside (orbax's
            # standard handler has no switch for it; restore reads either)
            self._impl = pytree_checkpoint_handler.PyTreeCheckpointHandler(use_compression=False)

        def finalize(self, directory: Any) -> None:
            super().finalize(directory)  # (merges the processes' OCDBT files)
            seal(Path(str(directory)))

    return SealingHandler()


def manager(root: Path, keep: int, forever: Sequence[int], seal: Callable[[Path], None]) -> Any:
    """An orbax CheckpointManager over ``root`` (module docstring); the caller closes it."""
    import orbax.checkpoint as ocp
    from orbax.checkpoint.checkpoint_managers import AnyPreservationPolicy, CustomSteps, LatestN

    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    registry.add("state", ocp.args.StandardSave, _sealing_handler(seal))
    options = ocp.CheckpointManagerOptions(
        step_prefix="step",
        step_format_fixed_length=10,  # step_0000001234
        preservation_policy=AnyPreservationPolicy([LatestN(keep), CustomSteps(list(forever))]),
        enable_async_checkpointing=False,
        cleanup_tmp_directories=True,  # the unfinished writes of a crashed run
        save_root_metadata=False,
        lightweight_initialize=True,  # no step metadata is read: no time-based policy
    )
    return ocp.CheckpointManager(root.absolute(), options=options, handler_registry=registry)


def save_step(
    root: Path,
    step: int,
    state: Any,
    *,
    keep: int,
    forever: Sequence[int],
    seal: Callable[[Path], None],
) -> None:
    """Write ``state`` as step ``step`` of ``root`` and commit it, then delete the steps
    that neither the newest ``keep`` nor ``forever`` hold. Every process calls it."""
    import orbax.checkpoint as ocp

    mngr = manager(root, keep, forever, seal)
    try:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state))
        # force: orbax would skip (returning False) a step below its newest one, which a run
        # resumed from an older checkpoint (the newest one damaged) writes
        if not mngr.save(step, args=args, force=True):
            raise RuntimeError(f"orbax did not save step {step} in {root}")
    finally:
        mngr.close()


def warm_up() -> None:
    """Import orbax in a background thread: a run's first checkpoint (its last, in a short
    run) would otherwise import it (0.18 s, holding the GIL) while the evaluation runs.
    Started before the vocabulary and the encoding, whose C loops (:mod:`sgjax.ctokens`)
    leave the GIL and the second core free. An import error is raised by the save itself."""

    def run() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module("orbax.checkpoint")

    threading.Thread(target=run, name="sgjax-orbax-import", daemon=True).start()
