"""Progress of a run on stderr: tqdm on a terminal, else a plain line every ~10 s.

The rate (and so the ETA) is measured from the end of the first compiled call, so the
step's compilation does not count into it (before, the first piped line of a 15 s run
said "eta 210s").
"""

from __future__ import annotations

import sys
import time


def sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant digits (a learning rate of 2e-4 stays 2e-4,
    where rounding to 4 decimals printed 0.0)."""
    return float(f"{x:.{digits}g}") if isinstance(x, float) else x


class Progress:
    """Counts the words trained; ``__call__(words, metrics)`` after every compiled call."""

    def __init__(self, total_words: int, initial: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total_words, initial, enabled
        self.bar = None
        self.t0 = self.last = time.perf_counter()
        self.start: int | None = None  # words done at the end of the first call
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_words,
                initial=initial,
                unit="w",
                unit_scale=True,
                dynamic_ncols=True,
                smoothing=0.1,
            )

    def __call__(self, words: int, m: dict) -> None:
        self.done += words
        if self.start is None:  # the first call: it compiled the step, so the rate starts here
            self.start, self.t0 = self.done, time.perf_counter()
        if self.bar is not None:
            self.bar.update(words)
            self.bar.set_postfix(loss=f"{m['loss']:.4f}", lr=f"{m['lr']:.3g}", refresh=False)
        elif self.enabled and time.perf_counter() - self.last > 10:
            self.last = time.perf_counter()
            line = self.line(m, self.last)
            print(line, file=sys.stderr, flush=True)

    def line(self, m: dict, now: float) -> str:
        """The plain progress line: words, rate and ETA since the first call, loss, lr."""
        rate = (self.done - (self.start or 0)) / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / max(rate, 1e-9)
        return (
            f"words {self.done}/{self.total} ({100 * self.done / self.total:.1f}%) "
            f"{rate:,.0f} words/s loss {m['loss']:.4f} lr {m['lr']:.3g} eta {eta:.0f}s"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
