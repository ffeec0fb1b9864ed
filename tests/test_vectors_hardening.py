"""sgjax.vectors on hostile input: every word the corpus reader makes is written and read
back (by us and gensim), and every bad file gives one short VectorsFormatError or OSError
naming the file: non-finite values, a text file cut inside a number, corrupt gzip data, a
tab-separated file, absurd headers, a failing write."""

from __future__ import annotations

import errno
import gzip
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from sgjax.cli import main as cli_main
from sgjax.vectors import (
    VectorsFormatError,
    WordVectors,
    detect_binary,
    read_word2vec,
    write_word2vec,
)
from sgjax.vectors_io import _NUMBER, _NUMBER_BYTES, clip

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
# tokens the corpus reader makes (it splits on b" \t\n\r\x0b\x0c" only): Unicode spaces and
# line separators, ASCII control characters, NUL and the replacement character stay in words
ODD_WORDS = [
    "new\u00a0york",
    "a\u2028b",
    "x\x1cy",
    "p\x85q",
    "nul\x00",
    "\ufffd",
    "\u3000ideographic",
    "\x1f\x1e\x1d",
    "e\u0301",
    "</s>",
]
ASCII_WHITESPACE = [" ", "\t", "\n", "\r", "\x0b", "\x0c"]
BAD_FILE_RC = 2  # the exit status of `sgjax eval` and `sgjax neighbors` for a bad vectors file


def f32(*xs: float) -> bytes:
    return struct.pack(f"<{len(xs)}f", *xs)


def odd_vectors() -> WordVectors:
    rng = np.random.default_rng(0)
    words = ["the", *ODD_WORDS]
    return WordVectors.from_params(words, rng.standard_normal((len(words), 4)).astype(np.float32))


def subprocess_env() -> dict[str, str]:
    """The environment for a child Python that imports the same sgjax as this process."""
    import sgjax

    root = str(Path(sgjax.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli_main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# --- 1. every corpus token is a word the files hold ---------------------------------------------
@pytest.mark.parametrize(
    ("suffix", "binary", "newline"),
    [(".txt", False, True), (".bin", True, True), (".bin", True, False), (".txt.gz", False, True)],
)
def test_odd_words_round_trip_through_us_and_gensim(tmp_path, suffix, binary, newline):
    """Before: write_word2vec refused any word matching regex \\s (ValueError)."""
    kv = odd_vectors()
    p = tmp_path / f"v{suffix}"
    write_word2vec(kv, p, binary=binary, newline=newline)
    for flag in (binary, None):
        back = read_word2vec(p, flag)
        assert back.words == kv.words
        np.testing.assert_array_equal(back.matrix, kv.matrix)
    assert detect_binary(p) is binary
    keyedvectors = pytest.importorskip("gensim.models.keyedvectors")
    g = keyedvectors.KeyedVectors.load_word2vec_format(str(p), binary=binary)
    assert g.index_to_key == list(kv.words)
    np.testing.assert_array_equal(g.vectors, kv.matrix)


@pytest.mark.parametrize(
    ("word", "ok"),
    [(w, True) for w in ODD_WORDS]
    + [(f"a{c}b", False) for c in ASCII_WHITESPACE]
    + [("", False), ("\udcff", False)],
)
def test_writer_refuses_only_what_the_formats_cannot_hold(tmp_path, word, ok):
    kv = WordVectors(("ok", word), {"ok": 0, word: 1}, np.zeros((2, 2), np.float32))
    if ok:
        write_word2vec(kv, tmp_path / "x.txt")
        assert read_word2vec(tmp_path / "x.txt").words == ("ok", word)
    else:
        with pytest.raises(ValueError, match="word 1") as info:
            write_word2vec(kv, tmp_path / "x.txt")
        assert len(str(info.value)) < 200
        assert not list(tmp_path.iterdir())


def test_vocab_files_round_trip_odd_words(tmp_path):
    """sgjax.vocab's save_vocab/load_vocab keep the same words (read-only check of vocab.py)."""
    from sgjax.vocab import Vocab, load_vocab, save_vocab

    vocab = Vocab(tuple(["the", *ODD_WORDS]), np.arange(len(ODD_WORDS) + 1, 0, -1))
    save_vocab(vocab, tmp_path / "vocab.txt", sentences=3)
    assert load_vocab(tmp_path / "vocab.txt") == vocab


WRITE_UNDER_RLIMIT = """
import json, resource, sys
import numpy as np
from sgjax.vectors import WordVectors, write_word2vec
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
kv = WordVectors.from_params([f"w{i}" for i in range(2000)], np.ones((2000, 20), np.float32))
out = []
for name, binary in json.loads(sys.argv[1]):
    try:
        write_word2vec(kv, name, binary=binary)
        out.append(None)
    except OSError as e:
        out.append([type(e).__name__, e.errno, e.filename, str(e)])
print(json.dumps(out))
"""


def test_failed_write_leaves_no_temporary_file(tmp_path):
    """A full disk (here: a file size limit, EFBIG) raises an OSError naming the target and
    removes the half-written ``.tmp``. Before: ``vectors.bin.tmp`` stayed, the error named it.

        python -c 'import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096));
        import numpy as np; from sgjax.vectors import *; write_word2vec(WordVectors.from_params(
        [f"w{i}" for i in range(2000)], np.ones((2000, 20), np.float32)), "v.bin", True)'
    """
    out = tmp_path / "out"
    out.mkdir()
    cases = [
        (str(out / "v.bin"), True),
        (str(out / "v.txt"), False),
        (str(out / "v.txt.gz"), False),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_RLIMIT, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr
    for (name, _), got in zip(cases, json.loads(proc.stdout), strict=True):
        assert got is not None, name
        kind, code, filename, text = got
        assert code == errno.EFBIG and filename == name and name in text, got
    assert sorted(os.listdir(out)) == []


def test_write_into_a_missing_directory_names_the_target(tmp_path):
    target = tmp_path / "nodir" / "v.bin"
    with pytest.raises(FileNotFoundError) as info:
        write_word2vec(odd_vectors(), target, binary=True)
    assert info.value.filename == str(target)


def test_training_on_odd_and_binary_corpora_writes_vectors(tmp_path, capsys):
    """A corpus with 'new\\u00a0york' and a copy of /bin/ls trains, writes vectors.txt and
    vectors.bin holding every vocabulary word, and `sgjax export` of the run works.
    Before: the run trained to the end, then failed writing the vectors (rc 2):

        python3 -c "import random;random.seed(0);w=['new\\u00a0york']+[f'w{i}' for i in \\
        range(50)];open('/tmp/nbsp.txt','w').write('\\n'.join(' '.join(random.choice(w) \\
        for _ in range(10)) for _ in range(2000))+'\\n')"
        sgjax train --config configs/smoke.yaml --set data.corpus=/tmp/nbsp.txt \\
            --set data.min_count=1 --quiet --out /tmp/run     # also data.corpus=<copy of ls>
    """
    import random

    from sgjax.vocab import load_vocab

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = random.Random(0)
    vocab = ["new\u00a0york"] + [f"w{i}" for i in range(50)]
    lines = (" ".join(rng.choice(vocab) for _ in range(10)) for _ in range(2000))
    (corpus / "nbsp.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ls = Path("/bin/ls")
    if ls.is_file():
        (corpus / "ls").write_bytes(ls.read_bytes())
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "sgjax.cli", "train", "--config", str(SMOKE), "--quiet",
         "--set", f"data.corpus={corpus}", "--set", "data.min_count=1", "--out", str(run)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=subprocess_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    words = set(load_vocab(run / "vocab.txt").words)
    assert "new\u00a0york" in words
    if ls.is_file():
        assert any("\ufffd" in w for w in words)  # the binary's words came through
    for name, binary in (("vectors.txt", False), ("vectors.bin", True)):
        kv = read_word2vec(run / name)
        assert set(kv.words) == words and detect_binary(run / name) is binary
    rc, out, err = run_cli(capsys, "export", "--run", str(run), "--format", "text")
    assert rc == 0, err
    assert set(read_word2vec(out.strip(), False).words) == words


# --- 2. non-finite values ---------------------------------------------------------------------
NONFINITE = [
    # (content, binary, fragments of the message)
    (b"2 2\na 1 2\nb nan 2\n", False, ["line 3", "value 1 of word 'b' is nan"]),
    (b"2 2\na 1 -inf\nb 1 2\n", False, ["line 2", "value 2 of word 'a' is -inf"]),
    (b"2 2\na 1 2\nb 1 Infinity\n", False, ["line 3", "value 2 of word 'b' is inf"]),
    (b"2 2\na 1e39 2\nb 1 2\n", False, ["line 2", "value 1 of word 'a' is inf"]),  # > float32
    (b"2 2\na " + f32(1, 2) + b"\nb " + f32(1, float("nan")), True, ["byte offset 15", "'b'"]),
    (b"2 2\na " + f32(float("inf"), 2) + b"\nb " + f32(1, 2), True, ["byte offset 4", "inf"]),
]


@pytest.mark.parametrize(("content", "binary", "fragments"), NONFINITE)
def test_nonfinite_values_are_refused_unless_allowed(tmp_path, content, binary, fragments):
    """Before: loaded silently (one nan row spoils every cosine with its word)."""
    p = tmp_path / "v.vec"
    p.write_bytes(content)
    for flag in (binary, None):
        with pytest.raises(VectorsFormatError) as info:
            read_word2vec(p, flag)
        for frag in fragments:
            assert frag in str(info.value), str(info.value)
        assert "allow_nonfinite" in str(info.value)
    kv = read_word2vec(p, binary, allow_nonfinite=True)
    assert kv.words == ("a", "b") and not np.isfinite(kv.matrix).all()


def test_cli_refuses_nonfinite_vectors_unless_allowed(tmp_path, capsys):
    """Before: `sgjax eval` and `sgjax neighbors` scored a file with a nan row, silently:

    printf '2 2\\na 1 2\\nb nan 2\\n' > v.txt; sgjax neighbors --vectors v.txt a
    """
    words = ["man", "woman", "king", "queen", "boy", "girl"]
    m = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    m[5, 3] = np.nan
    p = tmp_path / "v.txt"
    write_word2vec(WordVectors.from_params(words, m), p)
    q = tmp_path / "q.txt"
    q.write_text(": s\nman woman king queen\nman woman boy girl\n")
    evaluate = ["eval", "--vectors", str(p), "--analogies", str(q), "--no-similarity"]
    neighbors = ["neighbors", "--vectors", str(p), "king"]
    for argv in (evaluate, neighbors):
        rc, out, err = run_cli(capsys, *argv)
        assert rc == BAD_FILE_RC and out == "" and err.count("\n") == 1, err
        assert "line 7" in err and "'girl' is nan" in err and "--allow-nonfinite" in err
        rc, out, err = run_cli(capsys, *argv, "--allow-nonfinite")
        assert rc == 0 and "warning" in err and "'girl'" in err
        json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))


def test_most_similar_ranks_nan_rows_last_and_still_excludes_the_query():
    """Before: a nan cosine sorted above everything and the query word came back as its own
    nearest neighbour (`sgjax neighbors --allow-nonfinite`)."""
    m = np.array([[1, 0], [np.nan, 1], [0.6, 0.8], [0, 1]], np.float32)
    kv = WordVectors.from_params(["a", "b", "c", "d"], m)
    got = kv.most_similar("a", topn=3)
    assert [w for w, _ in got] == ["c", "d", "b"] and np.isnan(got[2][1])


# --- 3. a text file cut inside its last number ------------------------------------------------
TEXT_ENDINGS = [
    # (content, the values read or an error fragment)
    (b"2 2\na 1 2\nb 3 4.5", "ends inside line 3"),  # before: loaded b as [3, 4.5]
    (b"2 2\na 1 2\nb 3 4.", "ends inside line 3"),  # before: [3, 4] (cut from 4.5)
    (b"1 2\na 1 2", "ends inside line 2"),
    (b"1 2\na 1 2\r", "ends inside line 2"),
    (b"2 2\na 1 2\nb 3 4\n", [[1, 2], [3, 4]]),
    (b"2 2\na 1 2\nb 3 4\n\n\n", [[1, 2], [3, 4]]),
    (b"2 2\na 1 2\nb 3 4\n  \n\t\n", [[1, 2], [3, 4]]),
    (b"2 2\r\na 1 2\r\nb 3 4\r\n", [[1, 2], [3, 4]]),
    (b"2 2\r\na 1 2 \r\nb 3 4 \r\n\r\n", [[1, 2], [3, 4]]),
    (b"2 2\na 1\t2\nb 3\x0b4\x0c\n", [[1, 2], [3, 4]]),
    (b"0 2\n", []),
]


@pytest.mark.parametrize(("content", "want"), TEXT_ENDINGS)
def test_text_records_must_end_with_a_newline(tmp_path, content, want):
    """Before: a file cut inside its last number loaded with the number shortened:

    printf '2 2\\na 1 2\\nb 3 4.' > v.txt; sgjax neighbors --vectors v.txt a
    """
    p = tmp_path / "v.txt"
    p.write_bytes(content)
    if isinstance(want, str):
        with pytest.raises(VectorsFormatError, match=want) as info:
            read_word2vec(p, False)
        assert "truncated" in str(info.value)
        if content.startswith(b"2 "):  # the records before the cut one are whole
            assert read_word2vec(p, False, limit=1).words == ("a",)
    else:
        got = read_word2vec(p, False).matrix
        np.testing.assert_array_equal(got, np.array(want, np.float32).reshape(-1, 2))


def test_well_formed_text_takes_the_fast_path(tmp_path, monkeypatch):
    """numpy parses every well-formed file (no per-float Python); only odd separators such as
    an inner \\r go the slow way, with the same result."""
    from sgjax import vectors_io

    slow = vectors_io._parse_text_values
    monkeypatch.setattr(vectors_io, "_parse_text_values", lambda *a: pytest.fail("slow path"))
    p = tmp_path / "v.txt"
    for content, want in TEXT_ENDINGS:
        if not isinstance(want, str) and want:
            p.write_bytes(content)
            np.testing.assert_array_equal(read_word2vec(p, False).matrix, want)
    write_word2vec(odd_vectors(), p)
    assert read_word2vec(p).words == odd_vectors().words
    p.write_bytes(b"2 2\na 1.5e-3 -inf\nb NaN +.5\n")
    assert read_word2vec(p, allow_nonfinite=True).matrix.shape == (2, 2)
    monkeypatch.setattr(vectors_io, "_parse_text_values", slow)
    p.write_bytes(b"2 2\na 1\r2\nb 3 \r 4\r\r\n")
    np.testing.assert_array_equal(read_word2vec(p, False).matrix, [[1, 2], [3, 4]])


# --- 4. corrupt compressed files --------------------------------------------------------------
def gz_cases() -> list[tuple[str, bytes]]:
    good = gzip.compress(b"2 2\na 1 2\nb 3 4\n", mtime=0)
    assert good[3] == 0  # no optional header fields: the deflate data starts at byte 10
    return [
        ("bad block type (zlib.error)", good[:10] + bytes([good[10] | 0x07]) + good[11:]),
        ("truncated (EOFError)", good[:-6]),
        ("crc mismatch", good[:-8] + bytes([good[-8] ^ 1]) + good[-7:]),
        ("not gzip at all", b"2 2\na 1 2\nb 3 4\n"),
        ("trailing garbage", good + b"garbage!"),
        ("empty", b""),
    ]


@pytest.mark.parametrize(("label", "content"), gz_cases(), ids=[c[0] for c in gz_cases()])
def test_corrupt_gzip_is_a_format_error(tmp_path, label, content):
    """Before: zlib.error tracebacks from read_word2vec and detect_binary:

        python -c "import gzip; g = gzip.compress(b'1 1\\na 1\\n'); \\
        open('v.txt.gz', 'wb').write(g[:10] + bytes([g[10] | 7]) + g[11:])"
        sgjax eval --vectors v.txt.gz
    """
    p = tmp_path / "v.txt.gz"
    p.write_bytes(content)
    for call in (read_word2vec, detect_binary):
        with pytest.raises(VectorsFormatError) as info:
            call(p)
        assert str(info.value).startswith(f"{p}: ") and len(str(info.value)) < len(str(p)) + 150


# --- 5. short messages ------------------------------------------------------------------------
LONG = b"x" * 100_000
LONG_MESSAGES = [
    # (content, binary): each error would quote 100 kB of the file if quoted in full
    (b"2 2\n" + LONG + b"\t1\t2\nb 1 2\n", None),  # a tab-separated file
    (b"1 2\n" + LONG + b" 1\n", False),
    (b"1 2\na 1 " + LONG + b"\n", False),
    (b"1 2\n" + LONG + b" nan 1\n", False),
    (b"2 1\n" + LONG + b" 1\n" + LONG + b" 1\n", False),
    (b"2 1\n" + LONG + b"\xff 1\nb 2\n", False),
    (LONG + b" 1\n", None),
    (b"1 2\n" + LONG + b" " + f32(1), True),
    (b"2 1\n" + LONG + b" " + f32(1) + LONG + b" " + f32(2), True),
]


@pytest.mark.parametrize(("content", "binary"), LONG_MESSAGES)
def test_error_messages_stay_short(tmp_path, content, binary):
    p = tmp_path / "v.vec"
    p.write_bytes(content)
    with pytest.raises(VectorsFormatError) as info:
        read_word2vec(p, binary)
    assert len(str(info.value)) < len(str(p)) + 200, str(info.value)[:500]


def test_tab_separated_file_gives_one_short_line(tmp_path, capsys):
    """Before: ~500 kB of stderr (numpy's loadtxt warning listing every line, then the first
    line quoted in full):

        python3 -c "import random; print('100000 50'); [print('w%d' % i, *('%.3f' % \\
        random.random() for _ in range(50)), sep='\\t') for i in range(100000)]" > tab.txt
        sgjax eval --vectors tab.txt 2>&1 | wc -c; sgjax neighbors --vectors tab.txt king
    """
    rng = np.random.default_rng(0)
    p = tmp_path / "tab.txt"
    rows = ("\t".join([f"w{i}", *(f"{x:.3f}" for x in rng.random(50))]) for i in range(20_000))
    p.write_text("20000 50\n" + "\n".join(rows) + "\n")
    for argv in (["eval", "--vectors", str(p)], ["neighbors", "--vectors", str(p), "king"]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rc, out, err = run_cli(capsys, *argv)
        assert rc == BAD_FILE_RC and out == "" and not caught
        assert err.count("\n") == 1 and len(err) < len(str(p)) + 200, err[:500]
        assert "line 2" in err and "contains a tab" in err


@pytest.mark.parametrize(
    ("x", "want"),
    [("abc", "'abc'"), ("a" * 100, "'" + "a" * 39 + "..."), (b"\xff" * 50, "b'\\xff")],
)
def test_clip(x, want):
    assert clip(x).startswith(want) and len(clip(x)) <= 43


# --- 6. memory is bounded by the file, not the header -----------------------------------------
HEADERS = [
    # (content, binary, error fragment or None: loads)
    (b"1000000000000 3\na 1 2 3\n", False, "declares 1000000000000 vectors, found 1"),
    (b"1000000000000 3\na " + f32(1, 2, 3), True, "record 2 of 1000000000000"),
    (b"2 1000000000\na 1 2\nb 1 2\n", False, "expected 1000000000 values"),
    (b"2 1000000000\na " + f32(1, 2) + b"\n", True, "needs 4000000000 bytes"),
    (b"2 1000000000\na 1 2\nb 1 2\n", None, "needs 4000000000 bytes"),  # detected as binary
    (b"0 1000000000\n", None, None),
    (b"0 2147483648\n", None, "bad header"),
    (b"99999999999999999999 2\na 1 2\n", False, "bad header"),  # before: OverflowError
    (b"1 100000000000000000000000000000\na 1\n", True, "bad header"),
    (b"0 100000000000000000000000000000\n", False, "bad header"),  # before: numpy ValueError
    (b"1 " + b"9" * 5000 + b"\na 1\n", False, "bad header"),
    (b"1_0 2\na 1 2\n", False, "bad header"),
    (b"+1 2\na 1 2\n", False, "bad header"),
]


@pytest.mark.parametrize(("content", "binary", "error"), HEADERS)
def test_absurd_headers_allocate_nothing(tmp_path, content, binary, error):
    """Before: OverflowError or numpy's "array is too big" for some, e.g.

    printf '99999999999999999999 2\\na 1 2\\n' > v.txt; sgjax neighbors --vectors v.txt a
    """
    p = tmp_path / "v.vec"
    p.write_bytes(content)
    tracemalloc.start()
    try:
        if error is None:
            kv = read_word2vec(p, binary)
            assert len(kv) == 0
        else:
            with pytest.raises(VectorsFormatError, match=error):
                read_word2vec(p, binary)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# --- the text reader's fields -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"a\tb 1 2", "contains a tab"),
        (b"a\rb 1 2", "contains a carriage return"),
        (b"a\x0bb 1 2", "contains a \\v"),
        (b"a\x0cb 1 2", "contains a \\f"),
        (b"a 1_0 2", "not a number: '1_0'"),  # float() would take it; numpy and gensim do not
        (b"a 1\x1c2", "found 1"),  # \x1c is no separator (float() would strip it)
        (b"a 1\xa02", "found 1"),  # numpy's loadtxt took a latin-1 NBSP for a space
        (b"a 0x1p3 2", "not a number"),
    ],
)
def test_text_fields(tmp_path, line, fragment):
    p = tmp_path / "v.txt"
    p.write_bytes(b"1 2\n" + line + b"\n")
    with pytest.raises(VectorsFormatError, match="line 2") as info:
        read_word2vec(p, False)
    assert fragment in str(info.value)


def test_fast_and_slow_number_parsers_agree():
    """Values made only of _NUMBER_BYTES go to numpy's loadtxt; it must accept exactly what
    _NUMBER (the slow path) accepts, and give float(x) rounded to float32."""
    import random

    rng = random.Random(0)
    alphabet = _NUMBER_BYTES.translate(None, b" \t\x0b\x0c")
    strings = {bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(4000)}
    strings |= {b"1.5e+05", b"-.5E-3", b"+inf", b"-Infinity", b"nan", b"NaN", b"1.", b"3.4e38"}
    for s in sorted(strings):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                got = np.loadtxt([s], dtype=np.float32, comments=None, ndmin=2)
                got = got[0, 0] if got.shape == (1, 1) else None
            except ValueError:
                got = None
            want = np.float32(float(s)) if _NUMBER.fullmatch(s) else None
        assert (got is None) == (want is None), s
        if want is not None:
            assert got.tobytes() == want.tobytes() or (np.isnan(got) and np.isnan(want)), s
