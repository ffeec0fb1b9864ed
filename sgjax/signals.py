"""Stopping a run cleanly: SIGINT (Ctrl-C) and SIGTERM (what SLURM and Kubernetes send
before killing) become a flag that :func:`sgjax.loop.fit` checks between compiled calls,
so no call is torn apart and a checkpoint is written before :class:`Interrupted` is
raised."""

from __future__ import annotations

import signal
import sys


class Interrupted(KeyboardInterrupt):
    """Training was stopped by SIGINT or SIGTERM (``signum``) after a checkpoint was written."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


class StopFlag:
    """Turns SIGINT (Ctrl-C) and SIGTERM (what SLURM and Kubernetes send before killing)
    into a flag checked between calls, so no call is torn apart and a checkpoint is
    written; a second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.raised: int = 0  # the signal received, 0 for none
        self._old: dict = {}

    def __enter__(self) -> StopFlag:
        try:
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread: leave signals alone
            self._old = {}
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.raised = signum
        print(
            f"\n{signal.Signals(signum).name}: finishing the current call and writing a "
            "checkpoint ...",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
