"""The evaluation data sets and what the evaluators share: the shipped files, their errors,
line reading, and the vocabulary as gensim's evaluators see it.

:mod:`sgjax.analogy` (analogies) and :mod:`sgjax.evaluate` (word pairs, neighbours) both
read files whose problems must name the file and line (:class:`EvaluationDataError`), and
both look words up in the first ``restrict_vocab`` words, upper-cased with
``case_insensitive`` (:func:`_ok_vocab`), so their numbers match gensim's.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import numpy as np

from sgjax.vectors import WordVectors

__all__ = [
    "DEFAULT_RESTRICT_VOCAB",
    "EvaluationDataError",
    "NoValidPairsError",
    "PathLike",
    "questions_words_path",
    "wordsim353_path",
]

PathLike = str | os.PathLike[str]
DEFAULT_RESTRICT_VOCAB = 300_000


def questions_words_path() -> Path:
    """The shipped Google analogy set (14 sections, 19,544 questions)."""
    return Path(str(files("sgjax") / "data" / "questions-words.txt"))


def wordsim353_path() -> Path:
    """The shipped WordSim-353 pairs (tab-separated, ``#`` comments)."""
    return Path(str(files("sgjax") / "data" / "wordsim353.tsv"))


class EvaluationDataError(ValueError):
    """An evaluation file that cannot be used; the message names the file (and line)."""


class NoValidPairsError(EvaluationDataError):
    """No pair of a word-pairs file is usable: bad format or every pair out of vocabulary."""


# --- vocabulary as gensim's evaluators see it -------------------------------------------------
def _ok_vocab(
    kv: WordVectors, restrict_vocab: int | None, case_insensitive: bool
) -> tuple[dict[str, int], np.ndarray]:
    """The lookup table of the first ``restrict_vocab`` words (upper-cased keys map to the
    first case variant) and ``canon``: for each of those rows, the row its key maps to."""
    words = kv.words[:restrict_vocab] if restrict_vocab else kv.words
    if not case_insensitive:
        return {w: i for i, w in enumerate(words)}, np.arange(len(words))
    ok: dict[str, int] = {}
    canon = np.empty(len(words), np.int64)
    for i, w in enumerate(words):
        canon[i] = ok.setdefault(w.upper(), i)
    return ok, canon


def _read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise EvaluationDataError(f"{path}: cannot read: {e.strerror or e}") from None


def _lines(data: bytes) -> list[bytes]:
    """A file's lines (its bytes ``data``), without their newlines."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _utf8(path: PathLike, line_no: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EvaluationDataError(f"{path}: line {line_no}: not valid UTF-8 ({e.reason})") from None
