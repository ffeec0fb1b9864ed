"""`sgjax export --format npy|tsv`: numpy's .npy plus a words file, and the TensorBoard
projector's vectors.tsv plus metadata.tsv.

The run directories here are made directly (a vocab.txt and a checkpoint of known W and W_out),
so the exported arrays can be compared with what was saved, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sgjax import checkpoint
from sgjax.cli import main as cli_main
from sgjax.commands.export import words_path, write_vectors
from sgjax.vectors import WordVectors

WORDS = ["the", "of", "naïve", "日本", "Paris", "paris", "x"]


def wide_vectors(v: int, n: int, seed: int = 0) -> WordVectors:
    """v words x n: values from 1e-8 to 1e8, negative, and an exact zero."""
    rng = np.random.default_rng(seed)
    words = (WORDS + [f"w{i}" for i in range(v)])[:v]
    m = rng.standard_normal((v, n)) * 10.0 ** rng.integers(-8, 8, (v, n))
    if v:
        m[0, 0] = 0.0
    return WordVectors.from_params(words, m.astype(np.float32))


def make_run(root: Path, words: list[str], W: np.ndarray, W_out: np.ndarray) -> Path:
    """A run directory as `sgjax train` leaves it, as far as `sgjax export` reads it."""
    run = root / "run"
    run.mkdir()
    vocab = "".join(f"{w} {1000 - i}\n" for i, w in enumerate(words))  # descending counts
    (run / "vocab.txt").write_text(vocab, encoding="utf-8")
    checkpoint.save(run, {"params": {"W": W, "W_out": W_out}}, {"step": 9, "words_total": 77})
    return run


@pytest.fixture
def run(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    kv = wide_vectors(7, 5)
    W_out = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)
    return make_run(tmp_path, list(kv.words), kv.matrix, W_out), kv.matrix, W_out


def export(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli_main(["export", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def read_back(fmt: str, vectors_file: str, words_file: str) -> tuple[np.ndarray, list[str]]:
    """The arrays as a user would load them: numpy for the values, lines for the words."""
    if fmt == "npy":
        matrix = np.load(vectors_file, allow_pickle=False)
    else:
        matrix = np.loadtxt(vectors_file, delimiter="\t", dtype=np.float32, ndmin=2)
    with open(words_file, encoding="utf-8", newline="") as f:
        words = f.read().split("\n")
    assert words[-1] == "", "the words file ends with a newline"
    return matrix, words[:-1]


# --- the files ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["npy", "tsv"])
@pytest.mark.parametrize("shape", [(7, 5), (4, 1), (1, 3)])
def test_round_trip_is_exact(tmp_path, fmt, shape):
    kv = wide_vectors(*shape)
    out = str(tmp_path / f"vectors.{fmt}")
    paths = write_vectors(kv, out, fmt)
    assert paths == [out, words_path(out, fmt)]
    matrix, words = read_back(fmt, *paths)
    assert matrix.dtype == np.float32 and matrix.shape == shape
    np.testing.assert_array_equal(matrix, kv.matrix)  # 9 digits restore float32 in tsv
    assert words == list(kv.words)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(p).name for p in paths)


def test_tsv_is_what_the_projector_reads(tmp_path):
    """vectors.tsv: one line per word, N tab-separated numbers, no header; metadata.tsv: one
    word per line and no header (a single column has none)."""
    kv = wide_vectors(7, 5)
    vectors_file, metadata = write_vectors(kv, str(tmp_path / "vectors.tsv"), "tsv")
    lines = Path(vectors_file).read_text(encoding="ascii").split("\n")
    assert lines[-1] == "" and len(lines) == 8
    for line, row in zip(lines[:-1], kv.matrix, strict=True):
        fields = line.split("\t")
        assert len(fields) == 5 and [np.float32(x) for x in fields] == row.tolist()
    assert Path(metadata).read_text(encoding="utf-8") == "".join(w + "\n" for w in kv.words)
    assert Path(metadata).name == "vectors.metadata.tsv"


def test_npy_is_plain_float32(tmp_path):
    kv = wide_vectors(7, 5)
    out, _ = write_vectors(kv, str(tmp_path / "v.npy"), "npy")
    header = Path(out).read_bytes()[:128]
    assert header.startswith(b"\x93NUMPY") and b"'descr': '<f4'" in header
    assert b"'fortran_order': False" in header and b"'shape': (7, 5)" in header


@pytest.mark.parametrize(
    ("out", "fmt", "words_file"),
    [
        ("run/vectors.input.npy", "npy", "run/vectors.input.words.txt"),
        ("run/vectors.input.tsv", "tsv", "run/vectors.input.metadata.tsv"),
        ("vectors.tsv", "tsv", "vectors.metadata.tsv"),
        ("emb", "npy", "emb.words.txt"),
        ("emb.txt", "tsv", "emb.txt.metadata.tsv"),
    ],
)
def test_words_file_name(out, fmt, words_file):
    assert words_path(out, fmt) == words_file


# --- the command ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["npy", "tsv"])
@pytest.mark.parametrize("which", ["input", "both"])
def test_cli_default_paths_hold_the_checkpoint(run, capsys, fmt, which):
    run_dir, W, W_out = run
    rc, out, err = export(capsys, "--run", str(run_dir), "--format", fmt, "--which", which)
    assert rc == 0, err
    vectors_file = run_dir / f"vectors.{which}.{fmt}"
    assert out.splitlines() == [str(vectors_file), words_path(str(vectors_file), fmt)]
    assert "7 words x 5" in err and fmt in err and "step 9" in err
    matrix, words = read_back(fmt, *out.splitlines())
    np.testing.assert_array_equal(matrix, W if which == "input" else W + W_out)
    assert words == WORDS


def test_cli_out_names_both_files(run, tmp_path, capsys):
    run_dir, W, _ = run
    target = tmp_path / "projector" / "emb.tsv"
    target.parent.mkdir()
    rc, out, err = export(capsys, "--run", str(run_dir), "--format", "tsv", "--out", str(target))
    assert rc == 0, err
    assert out.splitlines() == [str(target), str(target.parent / "emb.metadata.tsv")]
    np.testing.assert_array_equal(read_back("tsv", *out.splitlines())[0], W)


# --- errors: one line naming the file, exit code 2, nothing left behind -----------------------
@pytest.mark.parametrize("fmt", ["npy", "tsv"])
def test_gz_is_refused(run, tmp_path, capsys, fmt):
    target = tmp_path / f"v.{fmt}.gz"
    rc, out, err = export(capsys, "--run", str(run[0]), "--format", fmt, "--out", str(target))
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert str(target) in err and "drop the .gz" in err
    assert not list(tmp_path.glob("v.*"))


@pytest.mark.parametrize("fmt", ["npy", "tsv"])
def test_unwritable_output(run, tmp_path, capsys, fmt):
    target = tmp_path / "no-such-dir" / f"v.{fmt}"
    rc, out, err = export(capsys, "--run", str(run[0]), "--format", fmt, "--out", str(target))
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert str(target) in err and "cannot write" in err


@pytest.mark.parametrize("fmt", ["npy", "tsv"])
def test_a_failed_words_file_leaves_neither_file(tmp_path, fmt):
    out = str(tmp_path / f"v.{fmt}")
    blocked = Path(words_path(out, fmt) + ".tmp")
    blocked.mkdir()  # the words file's temporary name cannot be opened
    with pytest.raises(OSError, match="cannot write") as info:
        write_vectors(wide_vectors(7, 5), out, fmt)
    assert info.value.filename == words_path(out, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocked.name]  # no vectors, no .tmp


@pytest.mark.parametrize("word", ["tab\there", "new\nline", "cr\rhere"])
@pytest.mark.parametrize("fmt", ["npy", "tsv"])
def test_a_word_that_breaks_the_words_file_is_refused(tmp_path, word, fmt):
    kv = WordVectors.from_params(["ok", word], np.ones((2, 3), np.float32))
    out = str(tmp_path / f"v.{fmt}")
    with pytest.raises(ValueError, match="word 1 .* tab or line break") as info:
        write_vectors(kv, out, fmt)
    assert words_path(out, fmt) in str(info.value)
    assert not list(tmp_path.iterdir())


def test_unknown_format():
    with pytest.raises(ValueError, match="--format must be one of"):
        write_vectors(wide_vectors(2, 2), "x.parquet", "parquet")
