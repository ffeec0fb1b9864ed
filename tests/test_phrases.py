"""`sgjax phrases` and sgjax.phrases: word2phrase / gensim Phrases phrase detection.

gensim 4.4's ``Phrases`` is the reference: on the same sentences sgjax finds the same
phrases with the same scores (``export_phrases()``), the same ``len(vocab)``, and joins
exactly as ``phrases[sentence]``; several passes equal gensim applied again to its own output.
The default suite runs on the first 4,000 lines of realtext-v1 (about 100k tokens); the whole
corpus is compared under ``-m slow``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import lzma
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sgjax import phrases as P
from sgjax.cli import main as cli_main
from sgjax.commands import phrases as phrases_cmd
from sgjax.corpus import iter_lines

gensim_phrases = pytest.importorskip("gensim.models.phrases")
REALTEXT = Path(P.__file__).parent / "data" / "realtext-v1.txt.xz"
ENGLISH = P.ENGLISH_CONNECTOR_WORDS
GENSIM_SCORING = {"original": "default", "npmi": "npmi"}


@pytest.fixture(scope="module")
def slice_lines() -> list[list[str]]:
    return list(itertools.islice(iter_lines(REALTEXT, max_line_tokens=10**9), 4000))


@pytest.fixture(scope="module")
def slice_path(slice_lines, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("slice") / "slice.txt"
    path.write_text("\n".join(" ".join(s) for s in slice_lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def long_path(slice_lines, tmp_path_factory) -> Path:
    """The slice as 80 lines of 50 sentences (about 1,250 tokens each), no final newline:
    lines span many chunks of a small ``chunk_bytes`` and are cut into pieces."""
    path = tmp_path_factory.mktemp("long") / "long.txt"
    lines = [sum(slice_lines[i : i + 50], []) for i in range(0, len(slice_lines), 50)]
    path.write_text("\n".join(" ".join(s) for s in lines), encoding="utf-8")
    return path


def sentences(path: Path, max_line_tokens: int | None) -> list[list[str]]:
    return list(iter_lines(path, max_line_tokens=max_line_tokens or 10**9))


def gensim_model(sents, min_count, threshold, scoring, connector_words=(), **kw):
    return gensim_phrases.Phrases(
        sents,
        min_count=min_count,
        threshold=threshold,
        scoring=GENSIM_SCORING[scoring],
        connector_words=frozenset(connector_words),
        **kw,
    )


def assert_same_phrases(ours: dict[str, float], theirs: dict[str, float]) -> None:
    assert set(ours) == set(theirs), (set(ours) ^ set(theirs)).pop()
    a = np.array([ours[k] for k in theirs])
    b = np.array(list(theirs.values()))
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=0)


# --------------------------------------------------------------------------------------------
# Agreement with gensim: phrases, scores, len(vocab) and joins.

# (file, scoring, min_count, threshold, connector words, max_line_tokens, chunk_bytes)
CASES = [
    ("slice", "original", 5, 10.0, (), None, 2 << 20),
    ("slice", "original", 3, 5.0, (), None, 2 << 20),
    ("slice", "npmi", 5, 0.5, (), None, 2 << 20),
    ("slice", "original", 5, 10.0, ENGLISH, None, 2 << 20),
    ("slice", "npmi", 4, 0.3, ENGLISH, None, 4096),
    ("long", "original", 5, 10.0, (), None, 500),
    ("long", "original", 3, 5.0, (), 7, 1000),
    ("long", "original", 3, 5.0, ENGLISH, 13, 300),
    ("long", "npmi", 3, 0.4, ENGLISH, 1000, 1 << 20),
]


@pytest.mark.parametrize("which, scoring, min_count, threshold, conn, max_line, chunk", CASES)
def test_phrases_and_joins_equal_gensim(
    request, tmp_path, which, scoring, min_count, threshold, conn, max_line, chunk
):
    path = request.getfixturevalue(f"{which}_path")
    sents = sentences(path, max_line)
    counts = P.count_phrases(
        path, connector_words=conn, max_line_tokens=max_line, chunk_bytes=chunk
    )
    model = P.score_phrases(counts, min_count, threshold, scoring)
    g = gensim_model(sents, min_count, threshold, scoring, conn)
    assert (counts.tokens, counts.len_vocab) == (g.corpus_word_count, len(g.vocab))
    assert len(model) > 100
    assert_same_phrases(model.phrases(), g.export_phrases())

    out = tmp_path / "out.txt"
    done = P.apply_phrases(model, path, out, chunk_bytes=chunk)
    # per input line, its pieces rewritten by gensim one after another
    want, pieces = [], iter(g[s] for s in sents)
    for line in sentences(path, None):
        n, toks = 0, []
        while n < len(line):
            piece = next(pieces)
            toks += piece
            n += sum(1 + t.count("_") for t in piece)
        want.append(toks)
    got = [line.split() for line in out.read_text(encoding="utf-8").splitlines()]
    assert got == want
    assert done["tokens_in"] == counts.tokens
    assert done["tokens_out"] == sum(map(len, got)) < counts.tokens


def test_words_holding_the_delimiter_only_differ_from_gensim_in_its_string_keys(tmp_path):
    """gensim counts the token ``a_b`` and the pair ``a b`` under one key; sgjax does not."""
    path = tmp_path / "c.txt"
    path.write_text("a b c\n" * 3 + "a_b c\n" * 3, encoding="utf-8")
    ours = P.find_phrases(path, min_count=1, threshold=0.1, scoring="original")
    theirs = gensim_model(sentences(path, None), 1, 0.1, "original").export_phrases()
    assert set(ours) == set(theirs) == {"a_b", "b_c", "a_b_c"}  # a_b_c: the pair (a_b, c)
    assert ours["a_b"] == (3 - 1) / (3 * 3) * 7  # L: 4 unigrams (a, b, c, a_b) + 3 pairs
    assert theirs["a_b"] == (6 - 1) / (3 * 3) * 6  # gensim: one key a_b counted 6 times
    assert theirs["a_b_c"] == (3 - 1) / (3 * 6) * 6  # scored as a, c around a connector b


@pytest.mark.parametrize("passes", [2, 3])
def test_passes_equal_gensim_applied_to_its_own_output(slice_path, slice_lines, tmp_path, passes):
    out = tmp_path / "out.txt"
    summary = P.phrase_corpus(
        slice_path, out, passes, min_count=5, threshold=10.0, scoring="original"
    )
    cur = slice_lines
    for _ in range(passes):
        g = gensim_model(cur, 5, 10.0, "original")
        cur = [g[s] for s in cur]
    got = [line.split() for line in out.read_text(encoding="utf-8").splitlines()]
    assert got == cur
    runs = summary["passes"]
    assert [r["pass"] for r in runs] == list(range(1, passes + 1))
    assert all(r["phrases"] > 0 and r["joins"] > 0 for r in runs)
    assert [r["tokens_in"] for r in runs[1:]] == [r["tokens_out"] for r in runs[:-1]]
    assert summary["tokens_out"] == sum(map(len, got)) < summary["tokens_in"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no pass files left


@pytest.mark.parametrize("max_vocab_size", [None, 3000, 1500])
def test_pruning_equals_gensim_checked_after_each_sentence(
    slice_lines, tmp_path, monkeypatch, max_vocab_size
):
    """One short line per file (read as one chunk) and a merge after every chunk: sgjax then
    checks max_vocab_size after every sentence, as gensim does."""
    sents = slice_lines[:300]
    for i, s in enumerate(sents):
        (tmp_path / f"{i:04d}.txt").write_text(" ".join(s) + "\n", encoding="utf-8")
    monkeypatch.setattr(P, "_merge_at", lambda table_size: 0)
    counts = P.count_phrases(tmp_path, max_vocab_size=max_vocab_size)
    g = gensim_model(sents, 2, 1.0, "original", max_vocab_size=max_vocab_size or 10**9)
    assert counts.len_vocab == len(g.vocab)
    assert (counts.min_reduce > 1) == (max_vocab_size is not None)
    assert_same_phrases(P.score_phrases(counts, 2, 1.0, "original").phrases(), g.export_phrases())


# --------------------------------------------------------------------------------------------
# word2phrase scoring, checked against counts from collections.Counter.


def test_word2phrase_scores_are_its_float32_formula(slice_path, slice_lines):
    uni = Counter(itertools.chain.from_iterable(slice_lines))
    pairs = Counter(p for s in slice_lines for p in zip(s, s[1:], strict=False))
    n = np.float32(sum(uni.values()))
    want = {}
    for (a, b), c in pairs.items():
        f = np.float32
        s = f(c - 5) / f(uni[a]) / f(uni[b]) * n  # word2phrase.c, TrainModel
        if s > f(100):
            want[f"{a}_{b}"] = float(s)
    got = P.find_phrases(slice_path)  # word2phrase's defaults
    assert len(got) > 100
    assert got == want
    assert list(got.values()) == sorted(got.values(), reverse=True)


def test_the_command_module_imports_no_numpy():
    """`sgjax --help` imports every command module: heavy imports wait for run()."""
    code = "import sys, sgjax.commands.phrases; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_presets_and_defaults():
    assert P.WORD2PHRASE == {
        "min_count": 5,
        "threshold": 100.0,
        "scoring": "word2phrase",
        "max_line_tokens": None,
    }
    g = gensim_phrases.Phrases()
    assert (g.min_count, g.threshold, g.delimiter, g.connector_words) == (5, 10.0, "_", set())
    assert g.scoring is gensim_phrases.original_scorer and P.GENSIM["scoring"] == "original"
    assert (P.GENSIM["min_count"], P.GENSIM["threshold"]) == (g.min_count, g.threshold)
    assert P.ENGLISH_CONNECTOR_WORDS == gensim_phrases.ENGLISH_CONNECTOR_WORDS
    assert phrases_cmd.SCORINGS == P.SCORINGS


# --------------------------------------------------------------------------------------------
# The output file: the input's bytes with the joined gaps replaced.

MESSY = b"new  york\tcity\n\nnew york\r\nnew york city new\tyork\nyork new york"


@pytest.mark.parametrize(
    "delimiter, suffix, want",
    [
        ("_", ".txt", b"new_york\tcity\n\nnew_york\r\nnew_york city new_york\nyork new_york\n"),
        (
            "+=",
            ".txt",
            b"new+=york\tcity\n\nnew+=york\r\nnew+=york city new+=york\nyork new+=york\n",
        ),
        ("_", ".gz", b"new_york\tcity\n\nnew_york\r\nnew_york city new_york\nyork new_york\n"),
        ("_", ".xz", b"new_york\tcity\n\nnew_york\r\nnew_york city new_york\nyork new_york\n"),
    ],
)
def test_output_keeps_the_input_bytes_but_the_joined_gaps(tmp_path, delimiter, suffix, want):
    """(new, york): 5 times, (york, city): 2, the rest once; min_count 1 keeps the first
    two. Each line is joined left to right: 'york new york' -> 'york new_york'."""
    src = tmp_path / "in.txt"
    src.write_bytes(MESSY)
    out = tmp_path / f"out{suffix}"
    kw = {"min_count": 1, "threshold": 1e-9, "scoring": "original", "delimiter": delimiter}
    summary = P.phrase_corpus(src, out, **kw)
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(suffix, open)
    with opener(out, "rb") as f:
        assert f.read() == want
    assert set(P.find_phrases(src, **kw)) == {f"new{delimiter}york", f"york{delimiter}city"}
    assert summary["passes"][0]["joins"] == 5


def test_a_second_pass_builds_trigrams(tmp_path):
    """Pass 1 scores new_york 7/64*5 and york_city 3/32*5 (L = 3 words + 2 pairs); pass 2
    scores (new_york, city) 3/32*3."""
    src = tmp_path / "in.txt"
    src.write_text("new york\n" * 4 + "new york city\n" * 4, encoding="utf-8")
    kw = {"min_count": 1, "threshold": 0.2, "scoring": "original"}
    assert P.find_phrases(src, **kw) == {"new_york": 7 / 64 * 5, "york_city": 3 / 32 * 5}
    for passes, last in [(1, "new_york city"), (2, "new_york_city")]:
        out = tmp_path / f"out{passes}.txt"
        P.phrase_corpus(src, out, passes, **kw)
        assert out.read_text(encoding="utf-8") == "new_york\n" * 4 + f"{last}\n" * 4


def test_files_end_lines_and_long_tokens_are_cut_as_the_corpus_reader_cuts_them(tmp_path):
    """Two files without final newlines stay two sentences; a 3 MiB token is cut where
    sgjax.corpus cuts it (a space is written there), never glued to its neighbours."""
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "a.txt").write_text("new york " + "x" * (3 << 20) + " new york", encoding="utf-8")
    (d / "b.txt").write_text("new york new york", encoding="utf-8")
    counts = P.count_phrases(d, chunk_bytes=4096)
    out = tmp_path / "out.txt"
    model = P.score_phrases(counts, 1, 1e-9, "original")
    P.apply_phrases(model, d, out, chunk_bytes=4096)
    reader = list(iter_lines(d, chunk_bytes=4096, max_line_tokens=10**9))
    text = out.read_text(encoding="utf-8")
    assert len(reader) == 2 and len(reader[0]) > 5 and text.count("\n") == 2
    assert counts.tokens == sum(map(len, reader))
    assert [t.replace("_", " ").split() for t in text.splitlines()] == reader
    assert text.splitlines()[1] == "new_york new_york"


# --------------------------------------------------------------------------------------------
# Bad input: a ValueError or OSError that names the file; the CLI prints one line, exit 2.


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"min_count": 0}, "min_count must be an integer >= 1"),
        ({"threshold": 0.0}, "threshold must be > 0 for word2phrase"),
        ({"scoring": "npmi", "threshold": 1.5}, "threshold must lie in [-1, 1]"),
        ({"scoring": "default"}, "scoring must be one of"),
        ({"delimiter": "a b"}, "delimiter must be non-empty and hold no whitespace"),
        ({"delimiter": ""}, "delimiter must be non-empty"),
        ({"max_line_tokens": 0}, "max_line_tokens must be >= 1 or None"),
        ({"max_vocab_size": 0}, "max_vocab_size must be >= 1 or None"),
    ],
)
def test_bad_settings_are_value_errors(slice_path, tmp_path, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        P.phrase_corpus(slice_path, tmp_path / "out.txt", **kwargs)
    assert list(tmp_path.iterdir()) == []


def _zstd(path: Path) -> None:
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 20)


def _text(n_tokens: int) -> bytes:
    """Random words, ten to a line (compresses to about a third with xz)."""
    words = np.random.default_rng(0).integers(0, 1000, n_tokens).astype(str)
    return "\n".join(" ".join(words[i : i + 10]) for i in range(0, n_tokens, 10)).encode()


def _truncated_xz(path: Path) -> None:
    data = lzma.compress(_text(20_000))
    path.write_bytes(data[: len(data) // 2])


def _text_file(path: Path) -> None:
    path.write_text("a b\n")


@pytest.mark.parametrize(
    "make, args, fragment",
    [
        (None, [], "corpus path not found: {tmp}/IN"),
        (lambda p: p.write_bytes(b" \n\t\n"), [], "{tmp}/IN is empty"),
        (_zstd, [], "{tmp}/IN: a zstd archive"),
        (_truncated_xz, [], "{tmp}/IN: corrupt or truncated xz data"),
        (_text_file, ["{tmp}/IN"], "the output {tmp}/IN is an input file"),
        (_text_file, ["{tmp}/nodir/OUT"], "{tmp}/nodir/OUT: cannot write"),
        (_text_file, ["--min-count", "0"], "min_count must be an integer >= 1"),
        (_text_file, ["--passes", "0"], "passes must be >= 1"),
        (_text_file, ["--scoring", "npmi"], "--scoring npmi needs a --threshold"),
        (_text_file, ["--max-line-tokens", "-1"], "--max-line-tokens must be >= 0"),
        (_text_file, ["--delimiter", " "], "delimiter must be non-empty"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(capsys, tmp_path, make, args, fragment):
    if make is not None:
        make(tmp_path / "IN")
    before = sorted(tmp_path.rglob("*"))
    out = [] if args and not args[0].startswith("-") else ["{tmp}/OUT"]
    argv = ["{tmp}/IN", *out, *args]
    rc = cli_main(["phrases", *(a.format(tmp=tmp_path) for a in argv)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("sgjax phrases: error: ")
    assert fragment.format(tmp=tmp_path) in err
    assert sorted(tmp_path.rglob("*")) == before  # no output, no temporary file


def test_a_failure_while_writing_leaves_no_file(tmp_path):
    """The corpus changed between counting and rewriting: the rewrite fails half-way."""
    src = tmp_path / "in.txt.xz"
    data = lzma.compress(_text(300_000))
    src.write_bytes(data)
    model = P.score_phrases(P.count_phrases(src), 1, 1e-9, "original")
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="in.txt.xz: corrupt or truncated xz"):
        P.apply_phrases(model, src, tmp_path / "out.txt", chunk_bytes=1 << 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt.xz"]


def test_cli_prints_one_json_summary(capsys, slice_path, slice_lines, tmp_path):
    out = tmp_path / "out.txt"
    opts = ["--passes", "2", "--gensim", "--connector-words", "english", "--threshold", "20"]
    rc = cli_main(["phrases", str(slice_path), str(out), *opts])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(lines) == 1
    summary = json.loads(lines[0])
    s = summary["settings"]
    assert (s["min_count"], s["threshold"], s["scoring"]) == (5, 20.0, "original")
    assert (s["max_line_tokens"], s["delimiter"]) == (10000, "_")
    assert s["connector_words"] == sorted(ENGLISH)
    assert [p["pass"] for p in summary["passes"]] == [1, 2]
    assert summary["tokens_out"] == len(out.read_text(encoding="utf-8").split())
    assert summary["tokens_in"] == sum(map(len, slice_lines)) and summary["seconds"] > 0


# --------------------------------------------------------------------------------------------
# The whole of realtext-v1 (3.0M tokens): gensim takes about a minute.


@pytest.mark.slow
@pytest.mark.parametrize("scoring, threshold", [("original", 10.0), ("npmi", 0.5)])
def test_realtext_equals_gensim_line_sentence(tmp_path, scoring, threshold):
    from gensim.models.word2vec import LineSentence

    t0 = time.perf_counter()
    counts = P.count_phrases(REALTEXT, max_line_tokens=10000)  # LineSentence's pieces
    model = P.score_phrases(counts, 5, threshold, scoring)
    ours = model.phrases()
    t1 = time.perf_counter()
    g = gensim_model(LineSentence(str(REALTEXT)), 5, threshold, scoring)
    theirs = g.export_phrases()
    t2 = time.perf_counter()
    print(f"\n{scoring}: {len(ours)} phrases; sgjax {t1 - t0:.2f}s, gensim {t2 - t1:.2f}s")
    assert counts.tokens == g.corpus_word_count == 3_046_612
    assert counts.len_vocab == len(g.vocab)
    assert len(ours) > 2000
    assert_same_phrases(ours, theirs)
    out = tmp_path / "out.txt"
    P.apply_phrases(model, REALTEXT, out)
    with open(out, encoding="utf-8") as f:
        for line, s in zip(f, LineSentence(str(REALTEXT)), strict=True):
            assert line.split() == g[s]
