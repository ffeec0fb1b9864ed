"""Fuzz the file readers with seeded mutations of small valid files: a bad file may only give
the reader's own clean error, and whatever is accepted must be right.

- vectors (.txt, .bin, .gz): read_word2vec either raises VectorsFormatError, or returns what
  an independent, strict, slow reference parser (below, from the rules in
  sgjax/vectors_io.py's docstring) makes of the same bytes, all finite; detect_binary
  returns a bool or raises VectorsFormatError; no other exception ever;
- corpus files (plain, .gz, .bz2, .xz): iter_lines either reads them or raises a ValueError
  whose message names the file.

Every case is a few hundred bytes, so none can take long; a failure names its seed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from sgjax.vectors import (
    VectorsFormatError,
    WordVectors,
    detect_binary,
    read_word2vec,
    write_word2vec,
)

CASES_PER_TEST = 60
SEED = 20250101

# --- the reference parser ---------------------------------------------------------------------
ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"


def ref_header(data: bytes) -> tuple[int, int, bytes] | None:
    nl = data.find(b"\n")
    if nl < 0:
        return None
    fields = data[:nl].split()
    if len(fields) != 2 or not all(f.isdigit() and len(f) < 20 for f in fields):
        return None
    v, n = int(fields[0]), int(fields[1])
    if v >= 2**63 or not 1 <= n < 2**31:
        return None
    return v, n, data[nl + 1 :]


def ref_number(field: bytes) -> float | None:
    """float() of an ASCII field, without the extras float() allows: "_" and whitespace."""
    try:
        s = field.decode("ascii")
        x = float(s)
    except ValueError:
        return None
    return None if "_" in s or s.strip() != s else x


def ref_text(data: bytes) -> tuple[list[str], np.ndarray] | None:
    head = ref_header(data)
    if head is None:
        return None
    v, n, body = head
    lines = body.split(b"\n")
    if len(lines) < v + 1:  # each of the v records ends with "\n"
        return None
    if any(line.strip(ASCII_WHITESPACE) for line in lines[v:]):
        return None
    words, rows = [], []
    for line in lines[:v]:
        word, _, rest = line.partition(b" ")
        if not word or any(c in ASCII_WHITESPACE for c in word):
            return None
        try:
            words.append(word.decode("utf-8"))
        except UnicodeDecodeError:
            return None
        fields = rest.split()
        if len(fields) != n:
            return None
        row = [ref_number(f) for f in fields]
        if None in row:
            return None
        rows.append(row)
    return finish(words, rows, n)


def ref_binary(data: bytes) -> tuple[list[str], np.ndarray] | None:
    head = ref_header(data)
    if head is None:
        return None
    v, n, body = head
    words, rows, pos = [], [], 0
    for _ in range(min(v, len(body) + 1)):
        while body[pos : pos + 1] == b"\n":
            pos += 1
        space = body.find(b" ", pos)
        if space < 0:
            return None
        word = body[pos:space]
        if not word or b"\n" in word or space + 1 + 4 * n > len(body):
            return None
        try:
            words.append(word.decode("utf-8"))
        except UnicodeDecodeError:
            return None
        rows.append(struct.unpack(f"<{n}f", body[space + 1 : space + 1 + 4 * n]))
        pos = space + 1 + 4 * n
    if len(words) < v or body[pos:].strip(b"\n"):
        return None
    return finish(words, rows, n)


def finish(words: list[str], rows: list, n: int) -> tuple[list[str], np.ndarray] | None:
    if len(set(words)) != len(words):
        return None
    with np.errstate(over="ignore"):
        matrix = np.array(rows, np.float64).reshape(len(rows), n).astype(np.float32)
    if not np.isfinite(matrix).all():
        return None
    return words, matrix


# --- mutations --------------------------------------------------------------------------------
INSERTS = [
    b"nan", b"inf", b"-inf", b"1e39", b"NaN", b"\t", b"\r", b"\r\n", b"\n", b"\n\n", b" ", b"  ",
    b"\xff", b"\xc3", b"\xe2\x80", b"\x00", b"\xa0", "\u00a0".encode(), "\u2028".encode(),
    b"\x1c", b"\x0b", b"\x0c", b"1_0", b"0x1", b"-", b".", b"e", b"1e", b"+", b"\x85",
]  # fmt: skip


NUMBERS = [
    b"nan", b"inf", b"-inf", b"1e39", b"1e-50", b"x", b"", b"-0", b"+.5", b"1E+2", b"7.", b"1_0",
    b"0x1", b"Infinity", b"3.4028235e38", b"1e-45", b"00012", b"1.5e", b"--1", b"1e+",
]  # fmt: skip


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One or two random edits: byte flips and sets, insertions (numbers, nan/inf, tabs, \\r,
    newlines, non-UTF-8 bytes), deletions, truncation, duplicated chunks, header edits, and
    edits a reader should take: other separators, CRLF line ends, other spellings of numbers."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 2)):
        op = rng.randrange(11)
        at = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(at, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(at, len(b) - 1)] = rng.randrange(256)
        elif op == 2:
            b[at:at] = rng.choice(INSERTS)
        elif op == 3:
            del b[at : at + rng.randint(1, 8)]
        elif op == 4:
            del b[at:]
        elif op == 5:
            end = min(len(b), at + rng.randint(1, 30))
            where = rng.randrange(len(b) + 1)
            b[where:where] = b[at:end]
        elif op == 6:
            nl = b.find(b"\n")
            v = rng.choice([0, 5, 6, 6, 6, 7, 10**12, 2**63])
            n = rng.choice([0, 2, 3, 3, 3, 4, 10**9, 2**31])
            head = rng.choice([f"{v} {n}"] * 4 + [f"{v}", f"{v} {n} 1", f"-{v} {n}", f"{v}\t{n}\r"])
            b[: max(nl, 0)] = head.encode()
        elif op == 7:  # replace a number of a text line
            starts = [i for i in range(1, len(b)) if b[i - 1] == 32 and chr(b[i]) in "-0123456789"]
            if starts:
                i = j = rng.choice(starts)
                while j < len(b) and b[j] not in ASCII_WHITESPACE:
                    j += 1
                b[i:j] = rng.choice(NUMBERS)
        elif op == 8:
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 9:  # another separator after a space
            spaces = [i for i in range(len(b)) if b[i] == 32]
            if spaces:
                i = rng.choice(spaces)
                b[i : i + 1] = rng.choice(
                    [b" \t", b"\t", b"  ", b" \r", b" \x0b", b" \x0c", b"\t "]
                )
        else:  # CRLF line ends from some point on
            b[at:] = bytes(b[at:]).replace(b"\n", b"\r\n")
    return bytes(b)


def base_vectors() -> WordVectors:
    rng = np.random.default_rng(0)
    words = ["the", "naïve", "日本", "new\u00a0york", "x\x1cy", "w"]
    m = rng.standard_normal((len(words), 3)).astype(np.float32)
    m[0, 0], m[1, 1] = 0.0, 1e-30
    return WordVectors.from_params(words, m)


def base_files(tmp: Path) -> dict[str, bytes]:
    kv = base_vectors()
    files = {}
    for name, binary, newline in [
        ("v.txt", False, True),
        ("v.bin", True, True),
        ("g.bin", True, False),
    ]:
        write_word2vec(kv, tmp / name, binary=binary, newline=newline)
        files[name] = (tmp / name).read_bytes()
    return files


# --- the checks -------------------------------------------------------------------------------
def check_vectors_file(path: Path, plain: bytes | None) -> None:
    """read_word2vec and detect_binary on ``path``, whose decompressed content is ``plain``
    (None: not decompressible), against the reference parse."""
    refs = {False: None, True: None}
    if plain is not None:
        refs = {False: ref_text(plain), True: ref_binary(plain)}
    for binary in (False, True, None):
        try:
            kv = read_word2vec(path, binary)
        except VectorsFormatError as e:
            assert str(e).startswith(f"{path}: ") and len(str(e)) < len(str(path)) + 200, e
            continue
        candidates = [refs[binary]] if binary is not None else [refs[False], refs[True]]
        assert any(
            r is not None
            and list(kv.words) == r[0]
            and kv.matrix.shape == r[1].shape
            and kv.matrix.tobytes() == r[1].tobytes()
            for r in candidates
        ), f"binary={binary}: read {kv!r} {kv.matrix.tolist()}, reference {candidates}"
        assert np.isfinite(kv.matrix).all()
    try:
        assert detect_binary(path) in (True, False)
    except VectorsFormatError:
        pass


def test_reference_parser_reads_the_base_files(tmp_path):
    kv = base_vectors()
    for name, data in base_files(tmp_path).items():
        ref = (ref_binary if name.endswith(".bin") else ref_text)(data)
        assert ref is not None and ref[0] == list(kv.words), name
        assert ref[1].tobytes() == kv.matrix.tobytes()


@pytest.mark.parametrize("name", ["v.txt", "v.bin", "g.bin"])
@pytest.mark.parametrize("block", range(3))
def test_fuzz_vectors_files(tmp_path, name, block):
    base = base_files(tmp_path)[name]
    for k in range(CASES_PER_TEST):
        seed = SEED + 1000 * block + k
        data = mutate(random.Random(f"{name}/{seed}"), base)
        p = tmp_path / f"case{k}.vec"
        p.write_bytes(data)
        try:
            check_vectors_file(p, data)
        except Exception as e:
            pytest.fail(f"{name} seed {seed}: {type(e).__name__}: {e}\ncontent: {data!r}")


@pytest.mark.parametrize("name", ["v.txt", "v.bin"])
@pytest.mark.parametrize("where", ["compressed", "content"])
def test_fuzz_gzip_vectors_files(tmp_path, name, where):
    """Mutations of the gzip stream itself (corrupt, truncated data) and of the content."""
    base = base_files(tmp_path)[name]
    for k in range(CASES_PER_TEST):
        rng = random.Random(f"gz/{name}/{where}/{SEED + k}")
        if where == "compressed":
            raw = mutate(rng, gzip.compress(base, mtime=0))
        else:
            raw = gzip.compress(mutate(rng, base), mtime=0)
        try:
            plain = gzip.decompress(raw)
        except Exception:  # noqa: BLE001 - any failure: the reader must refuse the file
            plain = None
        p = tmp_path / f"case{k}.{name}.gz"
        p.write_bytes(raw)
        try:
            check_vectors_file(p, plain)
        except Exception as e:
            pytest.fail(f"{where} {name} seed {SEED + k}: {type(e).__name__}: {e}\nraw: {raw!r}")


# --- corpus files -----------------------------------------------------------------------------
CORPUS = "the quick brown fox\nnew\u00a0york is a city\n日本 naïve\tx\x1cy\r\n\n" * 4
COMPRESSORS = {
    ".txt": lambda b: b,
    ".gz": lambda b: gzip.compress(b, mtime=0),
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
}


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_fuzz_corpus_files(tmp_path, suffix):
    """Corrupt or truncated compressed corpus files raise a ValueError (sgjax.corpus's
    CorpusError) naming the file, never a bare zlib/lzma/EOFError."""
    from sgjax.corpus import iter_lines

    base = COMPRESSORS[suffix](CORPUS.encode())
    for k in range(CASES_PER_TEST):
        raw = mutate(random.Random(f"corpus/{suffix}/{SEED + k}"), base)
        p = tmp_path / f"case{k}{suffix}"
        p.write_bytes(raw)
        try:
            for line in iter_lines(p):
                assert line and all(isinstance(t, str) and t for t in line)
        except ValueError as e:
            assert str(p) in str(e), f"seed {SEED + k}: {e}"
        except Exception as e:
            pytest.fail(f"{suffix} seed {SEED + k}: {type(e).__name__}: {e}\nraw: {raw!r}")
