"""sgjax.evaluate against gensim 4's evaluators on the same vectors, plus the CLI commands."""

from __future__ import annotations

import itertools
import json
import lzma
import time
import warnings

import numpy as np
import pytest

import sgjax.analogy as A
from sgjax.cli import main
from sgjax.evaluate import (
    EvaluationDataError,
    NoValidPairsError,
    doesnt_match,
    evaluate_word_analogies,
    evaluate_word_pairs,
    nearest_neighbors,
    pearson,
    questions_words_path,
    spearman,
    wordsim353_path,
)
from sgjax.vectors import WordVectors, write_word2vec

QW = str(questions_words_path())
WS = str(wordsim353_path())


def structured_vectors(seed: int = 0, dim: int = 24, fillers: int = 1500) -> WordVectors:
    """Vectors in which the analogies are partly solvable: per section, b = a + r_s + noise
    for every pair (a, b) of its questions, in file order, so later pairs overwrite earlier
    ones. About 4% of the question words are dropped (OOV) and 80 case variants are added:
    40 just after their word with a nearby vector (they compete with the answer and must be
    skipped as gensim skips them), 40 just before it with a random vector (they become the
    word's vector when matching case-insensitively)."""
    rng = np.random.default_rng(seed)
    pairs, section = [], ""
    for line in questions_words_path().read_text().splitlines():
        if line.startswith(": "):
            section = line[2:]
            continue
        a, b, c, d = line.lower().split()
        pairs += [(section, a, b), (section, c, d)]
    qwords = sorted({w for _, a, b in pairs for w in (a, b)})
    vec = {w: rng.standard_normal(dim) for w in qwords}
    offsets: dict[str, np.ndarray] = {}
    for s, a, b in pairs:
        if s not in offsets:
            offsets[s] = 1.5 * rng.standard_normal(dim)
        vec[b] = vec[a] + offsets[s] + 1.2 * rng.standard_normal(dim)
    kept = [w for w in qwords if rng.random() > 0.04]
    filler = [f"filler{i}" for i in range(fillers)]
    for w in filler:
        vec[w] = 1.5 * rng.standard_normal(dim)
    base = kept + filler
    rank = {w: float(r) for w, r in zip(base, rng.permutation(len(base)), strict=True)}
    for j, i in enumerate(rng.choice(len(kept), 80, replace=False)):
        w = kept[i]
        variant = w.upper() if j % 2 else w.capitalize()
        if j < 40:
            vec[variant], rank[variant] = vec[w] + 0.05 * rng.standard_normal(dim), rank[w] + 0.5
        else:
            vec[variant], rank[variant] = 1.5 * rng.standard_normal(dim), rank[w] - 0.5
    words = sorted(rank, key=rank.get)
    return WordVectors.from_params(words, np.array([vec[w] for w in words], np.float32))


def gensim_kv(kv: WordVectors):
    keyedvectors = pytest.importorskip("gensim.models.keyedvectors")
    g = keyedvectors.KeyedVectors(kv.dim)
    g.add_vectors(list(kv.words), kv.matrix)
    return g


@pytest.fixture(scope="module")
def structured() -> WordVectors:
    return structured_vectors()


@pytest.fixture(scope="module")
def trained() -> WordVectors:
    """A small gensim skip-gram model of the first 5,000 lines of realtext-v1."""
    models = pytest.importorskip("gensim.models")
    from importlib.resources import files

    with lzma.open(files("sgjax") / "data" / "realtext-v1.txt.xz", "rt") as f:
        lines = [line.split() for line in itertools.islice(f, 5000)]
    m = models.Word2Vec(
        lines, vector_size=32, window=5, min_count=3, sg=1, negative=5, workers=1, seed=1, epochs=2
    )
    return WordVectors.from_params(m.wv.index_to_key, m.wv.vectors)


# --- analogies vs gensim ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("restrict_vocab", "case_insensitive", "dummy4unknown"),
    [(300_000, True, False), (1200, True, False), (300_000, False, False), (1200, True, True)],
)
def test_analogies_equal_gensim_on_structured_vectors(
    structured, restrict_vocab, case_insensitive, dummy4unknown, analogy_method
):
    g = gensim_kv(structured)
    theirs = g.evaluate_word_analogies(
        QW,
        restrict_vocab=restrict_vocab,
        case_insensitive=case_insensitive,
        dummy4unknown=dummy4unknown,
    )
    ours = evaluate_word_analogies(
        structured,
        restrict_vocab=restrict_vocab,
        case_insensitive=case_insensitive,
        dummy4unknown=dummy4unknown,
    )
    assert ours.to_gensim() == theirs  # every section, every question, same outcome
    assert abs(ours.score - theirs[0]) <= 1e-6
    for s, t in zip(ours.sections, theirs[1], strict=False):
        n = len(t["correct"]) + len(t["incorrect"])
        assert abs(s.accuracy - (len(t["correct"]) / n if n else 0.0)) <= 1e-6
    # the vectors make a real test: partly solvable, with OOV questions
    if not dummy4unknown:
        assert 0.2 < ours.total.accuracy < 0.8
    assert 0 < ours.oov < ours.questions == 19544
    assert ours.total.evaluated == (19544 if dummy4unknown else 19544 - ours.oov)


def test_analogies_and_pairs_equal_gensim_on_a_trained_model(trained, analogy_method):
    g = gensim_kv(trained)
    theirs = g.evaluate_word_analogies(QW)
    ours = evaluate_word_analogies(trained)
    assert ours.to_gensim() == theirs
    assert ours.total.evaluated > 1000
    (r, _), (rho, _), oov_ratio = g.evaluate_word_pairs(WS)
    res = evaluate_word_pairs(trained)
    assert abs(res.pearson - r) <= 1e-6
    assert abs(res.spearman - rho) <= 1e-6
    assert res.oov_ratio == pytest.approx(oov_ratio, abs=1e-12)
    assert res.pairs + res.oov == 353 and 0 < res.oov < 353


def cosmul_like_gensim(g, path: str, case_insensitive: bool = True):
    """gensim's evaluate_word_analogies protocol with most_similar_cosmul (epsilon 1e-6) in
    place of most_similar: the reference for method="mul" (whole vocabulary)."""
    keys = g.index_to_key
    up = (lambda w: w.upper()) if case_insensitive else (lambda w: w)
    ok_vocab = {up(k): g.get_index(k) for k in reversed(keys)}
    sections: list[dict] = []
    for line in open(path, encoding="utf8"):
        if line.startswith(": "):
            sections.append({"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []})
            continue
        words = [up(w) for w in line.split()]
        if len(words) != 4:
            continue
        a, b, c, expected = words
        if any(w not in ok_vocab for w in words):
            continue
        original, g.key_to_index = g.key_to_index, ok_vocab
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sims = g.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
        finally:
            g.key_to_index = original
        predicted = None
        for word, _ in sims:
            predicted = up(word)
            if predicted not in {a, b, c}:
                break
        sections[-1]["correct" if predicted == expected else "incorrect"].append(tuple(words))
    total = {
        "section": "Total accuracy",
        "correct": [q for s in sections for q in s["correct"]],
        "incorrect": [q for s in sections for q in s["incorrect"]],
    }
    n = len(total["correct"]) + len(total["incorrect"])
    return (len(total["correct"]) / n if n else 0.0), sections + [total]


def test_3cosmul_equals_gensim_most_similar_cosmul(structured, analogy_method):
    g = gensim_kv(structured)
    theirs = cosmul_like_gensim(g, QW)
    ours = evaluate_word_analogies(structured, method="mul", epsilon=1e-6, restrict_vocab=None)
    assert ours.to_gensim() == theirs
    add = evaluate_word_analogies(structured, restrict_vocab=None)
    assert ours.total.correct != add.total.correct  # a different objective, not 3CosAdd again
    # Levy & Goldberg's epsilon (the default) only matters for x nearly opposite to a
    default = evaluate_word_analogies(structured, method="mul", restrict_vocab=None)
    assert abs(default.score - ours.score) < 0.01


def test_case_variant_of_a_question_word_is_skipped_like_gensim(tmp_path, analogy_method):
    # b + c - a points at "B" (a case variant of b, not excluded by index), then at d
    a, b, c = np.eye(4, dtype=np.float32)[:3]
    target = b + c - a
    rows = {
        "a": a,
        "b": b,
        "c": c,
        "B": target + np.float32([0, 0, 0, 0.1]),
        "d": target + np.float32([0, 0, 0, 0.5]),
        "C": target + np.float32([0, 0.2, 0, 0.6]),
        "e": np.float32([0, 0, 0, 1]),
    }
    kv = WordVectors.from_params(list(rows), np.stack(list(rows.values())))
    qfile = tmp_path / "q.txt"
    qfile.write_text(": s\na b c d\na b c e\n")
    g = gensim_kv(kv)
    ours = evaluate_word_analogies(kv, qfile)
    assert ours.to_gensim() == g.evaluate_word_analogies(str(qfile))
    assert ours.total.correct == (("A", "B", "C", "D"),)
    # case-sensitively "B" is simply another word, and the best answer
    ours_cs = evaluate_word_analogies(kv, qfile, case_insensitive=False)
    assert ours_cs.to_gensim() == g.evaluate_word_analogies(str(qfile), case_insensitive=False)
    assert ours_cs.total.correct == ()


def test_analogy_file_edge_cases_match_gensim(tmp_path, structured, analogy_method):
    content = (
        ": first\r\n"
        "athens greece baghdad iraq\r\n"
        "\r\n"
        "athens greece baghdad\r\n"  # 3 words: skipped, not counted
        ":nospace is a question line of six words\n"
        ": empty-section\n"
        ":  spaced   \n"
        "ATHENS Greece bangkok THAILAND\n"
        "boy girl brother sister extra\n"
        "boy girl brother sister\n"
        "nosuchword girl brother sister\n"
    )
    qfile = tmp_path / "q.txt"
    qfile.write_bytes(content.encode())
    g = gensim_kv(structured)
    for ci in (True, False):
        ours = evaluate_word_analogies(structured, qfile, case_insensitive=ci)
        assert ours.to_gensim() == g.evaluate_word_analogies(str(qfile), case_insensitive=ci)
    ours = evaluate_word_analogies(structured, qfile)
    assert [s.name for s in ours.sections] == ["first", "empty-section", "spaced"]
    assert ours.questions == 4 and ours.oov >= 1
    assert ours.oov_ratio == pytest.approx(100 * ours.oov / 4)


def test_questions_are_parsed_once_per_content(tmp_path, structured):
    """The parse of a questions file is reused while its bytes are the same, and made
    again as soon as they differ (rewritten at once, at the same size)."""
    qfile = tmp_path / "q.txt"
    qfile.write_text(": s\nathens greece baghdad iraq\n")
    first = evaluate_word_analogies(structured, qfile)
    hits = A._parsed.cache_info().hits
    assert evaluate_word_analogies(structured, qfile).to_gensim() == first.to_gensim()
    assert A._parsed.cache_info().hits == hits + 1
    qfile.write_text(": s\nathens greece baghdad irak\n")
    changed = evaluate_word_analogies(structured, qfile)
    assert (first.questions, first.oov, changed.questions, changed.oov) == (1, 0, 1, 1)
    assert changed.to_gensim() == gensim_kv(structured).evaluate_word_analogies(str(qfile))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"athens greece baghdad iraq\n: s\n", "line 1: question before the first"),
        (b"\n: s\n", "line 1: question before the first"),
        (b": s\na b c d\nb \xff c d\n", "line 3: not valid UTF-8"),
        (b": s\n: t\n", "no questions"),
        (b"", "no questions"),
    ],
)
def test_bad_analogy_files_raise(tmp_path, structured, content, match):
    qfile = tmp_path / "q.txt"
    qfile.write_bytes(content)
    with pytest.raises(EvaluationDataError, match=match) as info:
        evaluate_word_analogies(structured, qfile)
    assert str(qfile) in str(info.value)
    with pytest.raises(EvaluationDataError, match="cannot read"):
        evaluate_word_analogies(structured, tmp_path / "missing.txt")


def test_batching_threads_and_the_low_memory_path_agree(structured, monkeypatch, analogy_method):
    ref = evaluate_word_analogies(structured, method="mul", threads=1).to_gensim()
    assert evaluate_word_analogies(structured, method="mul", threads=2).to_gensim() == ref
    monkeypatch.setattr(A, "_SIMS_BUDGET", 0)  # cosines per batch, not for all words at once
    monkeypatch.setattr(A, "_CHUNK_CELLS", 400_000)
    assert evaluate_word_analogies(structured, method="mul", threads=2).to_gensim() == ref


def test_c_search_rescores_only_the_clashing_questions(structured, monkeypatch, c_library):
    """With analogy.cc, numpy scores only the questions whose best word is a case variant
    of one of theirs (gensim then looks further), from their words' rows of the cosines;
    the outcomes equal numpy's method throughout."""
    lib = c_library("analogy")
    monkeypatch.setattr(A, "_library", lambda: None)
    ref = evaluate_word_analogies(structured, restrict_vocab=None).to_gensim()
    monkeypatch.setattr(A, "_library", lambda: lib)
    calls, real = [], A._cosines
    monkeypatch.setattr(A, "_cosines", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    assert evaluate_word_analogies(structured, restrict_vocab=None).to_gensim() == ref
    ((args, kw),) = calls  # some question words' rows, not all
    assert 0 < len(kw["keep"]) < len(args[1])


@pytest.mark.parametrize("columns", [7, 256, 300, 2048])
@pytest.mark.parametrize("method", ["add", "mul"])
@pytest.mark.parametrize("nan", [False, True])
def test_c_search_is_numpys_argmax(columns, method, nan, monkeypatch, c_library):
    """analogy.cc's column of each question's best score is numpy's argmax over the scores
    (question words at -inf): equal scores (repeated vectors) give the first column, a NaN
    score is the maximum (the first NaN); across blocks of columns of any size, 1 or 2
    threads."""
    lib = c_library("analogy")
    rng = np.random.default_rng(columns)
    unit = rng.standard_normal((700, 8)).astype(np.float32)
    unit[rng.integers(0, 700, 300)] = unit[rng.integers(0, 700, 300)]  # ties
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    abc = rng.integers(0, 700, (500, 3))
    abc[:50] = abc[:50, [0]]  # a = b = c
    if nan:  # a NaN score for every question, in a later block (all NaN: a question of it)
        unit[650] = np.nan
        abc[60:70, 1] = 650
    words, inv = np.unique(abc, return_inverse=True)
    where = inv.reshape(-1, 3).astype(np.int64)
    monkeypatch.setattr(A, "_COS_COLUMNS", columns)
    sims = A._cosines(unit, words, method)
    a, b, c = sims[where[:, 0]], sims[where[:, 1]], sims[where[:, 2]]
    scores = (b + c) - a if method == "add" else (b * c) / (a + np.float32(1e-3))
    scores[np.arange(500)[:, None], abc] = -np.inf
    expected = scores.argmax(axis=1)
    assert len(set(expected.tolist())) > (1 if nan else 20)
    assert np.isnan(scores).any() == nan
    for cpus in (1, 2):
        found = A._search_in_c(lib, unit, words, where, abc, method, np.float32(1e-3), cpus)
        assert found.tolist() == expected.tolist()


@pytest.mark.slow
def test_full_question_set_on_30k_x_100_is_fast():
    """Issue 5: all 19,544 questions against a 30,000 x 100 table in under 5 s on 2 cores."""
    words = []
    for line in questions_words_path().read_text().splitlines():
        if not line.startswith(":"):
            words += line.lower().split()
    words = list(dict.fromkeys(words))
    words += [f"filler{i}" for i in range(30_000 - len(words))]
    rng = np.random.default_rng(0)
    kv = WordVectors.from_params(words, rng.standard_normal((30_000, 100)).astype(np.float32))
    t = time.perf_counter()
    res = evaluate_word_analogies(kv)
    elapsed = time.perf_counter() - t
    assert res.total.evaluated == 19544
    assert elapsed < 5.0, f"{elapsed:.2f} s"


# --- word pairs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("restrict_vocab", "case_insensitive", "dummy4unknown"),
    [(300_000, True, False), (300_000, False, False), (800, True, False), (800, True, True)],
)
def test_word_pairs_equal_gensim(trained, restrict_vocab, case_insensitive, dummy4unknown):
    g = gensim_kv(trained)
    (r, _), (rho, _), oov_ratio = g.evaluate_word_pairs(
        WS,
        restrict_vocab=restrict_vocab,
        case_insensitive=case_insensitive,
        dummy4unknown=dummy4unknown,
    )
    res = evaluate_word_pairs(
        trained,
        restrict_vocab=restrict_vocab,
        case_insensitive=case_insensitive,
        dummy4unknown=dummy4unknown,
    )
    assert abs(res.pearson - r) <= 1e-6
    assert abs(res.spearman - rho) <= 1e-6
    assert res.oov_ratio == pytest.approx(oov_ratio, abs=1e-12)
    assert res.pairs == (353 if dummy4unknown else 353 - res.oov)


def test_word_pairs_file_edge_cases_match_gensim(tmp_path, trained):
    w = trained.words
    content = (
        f"# comment\n{w[3]}\t{w[9]}\t7.5\r\n\n{w[4]}\t{w[20]}\n{w[5]} {w[6]} 1.0\n"
        f"{w[5].upper()}\t{w[7]}\t3\n{w[8]}\t{w[30]}\tnot-a-number\n{w[10]}\tnosuchword\t2\n"
        f"{w[11]}\t{w[12]}\t-1e0\n{w[13]}\t{w[14]}\t9\n"
    )
    pfile = tmp_path / "pairs.tsv"
    pfile.write_bytes(content.encode())
    g = gensim_kv(trained)
    (r, _), (rho, _), oov_ratio = g.evaluate_word_pairs(str(pfile))
    res = evaluate_word_pairs(trained, pfile)
    assert abs(res.pearson - r) <= 1e-6 and abs(res.spearman - rho) <= 1e-6
    assert res.oov_ratio == pytest.approx(oov_ratio, abs=1e-12)
    assert (res.pairs, res.oov, res.skipped_lines) == (4, 1, (3, 4, 5, 7))


def test_word_pairs_errors(tmp_path, trained):
    pfile = tmp_path / "pairs.tsv"
    pfile.write_text("nosuchword\tnorthis\t3.0\nbad line\n")
    with pytest.raises(NoValidPairsError, match="1 with a word outside .* 1 lines not"):
        evaluate_word_pairs(trained, pfile)
    pfile.write_bytes(b"a\tb\t1\n\xff\tb\t2\n")
    with pytest.raises(EvaluationDataError, match="line 2: not valid utf8"):
        evaluate_word_pairs(trained, pfile)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
        ([1, 1, 2, 2, 3, 3, 3], [0.1, 0.5, 0.2, 0.2, 0.9, 0.3, 0.3]),
        ([4.0, 4.0, 4.0, 1.0], [1.0, 2.0, 3.0, 4.0]),
        (list(np.random.default_rng(0).integers(0, 5, 60)), list(range(60))),
        (
            list(np.random.default_rng(1).integers(-3, 3, 400)),
            list(np.random.default_rng(2).normal(size=400)),
        ),
    ],
)
def test_correlations_equal_scipy(x, y):
    stats = pytest.importorskip("scipy.stats")
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))


# --- neighbours and odd one out ---------------------------------------------------------------
@pytest.mark.parametrize("restrict_vocab", [None, 500])
def test_nearest_neighbors_equal_gensim(trained, restrict_vocab):
    g = gensim_kv(trained)
    probe = [trained.words[i] for i in (0, 7, 42, 300, 900)]
    got = nearest_neighbors(trained, probe, topn=8, restrict_vocab=restrict_vocab)
    assert list(got) == probe
    for w in probe:
        want = g.most_similar(w, topn=8, restrict_vocab=restrict_vocab)
        assert [n for n, _ in got[w]] == [n for n, _ in want]
        np.testing.assert_allclose([s for _, s in got[w]], [s for _, s in want], atol=1e-6)
    with pytest.raises(KeyError, match="'nosuchword'"):
        nearest_neighbors(trained, ["the", "nosuchword"])


def test_doesnt_match_equals_gensim(trained):
    g = gensim_kv(trained)
    rng = np.random.default_rng(1)
    for _ in range(20):
        words = [trained.words[i] for i in rng.choice(2000, 5, replace=False)]
        assert doesnt_match(trained, words) == g.doesnt_match(words)
    with pytest.raises(KeyError):
        doesnt_match(trained, ["the", "nosuchword"])


def test_shipped_data_paths():
    assert questions_words_path().read_text().count("\n") == 19558
    assert sum(1 for line in wordsim353_path().open() if not line.startswith("#")) == 353


# --- CLI --------------------------------------------------------------------------------------
def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("binary", [True, False])
def test_cli_eval_defaults(tmp_path, capsys, structured, binary):
    p = tmp_path / "vectors.w2v"
    write_word2vec(structured, p, binary=binary)
    rc, out, err = run_cli(capsys, "eval", "--vectors", str(p))
    assert rc == 0 and err == ""  # no table: stderr is not a terminal
    res = json.loads(out)
    assert res["vectors"] == {
        "path": str(p),
        "format": "binary" if binary else "text",
        "vocab_size": len(structured),
        "dim": structured.dim,
    }
    want = evaluate_word_analogies(structured)
    assert res["analogies"]["accuracy"] == want.score
    assert res["analogies"]["evaluated"] == want.total.evaluated
    assert [s["section"] for s in res["analogies"]["sections"]] == [s.name for s in want.sections]
    assert res["similarity"][0]["path"] == WS
    assert set(res["seconds"]) == {"read", "evaluate"}


def test_cli_eval_options_and_table(tmp_path, capsys, trained):
    p = tmp_path / "vectors.txt"
    write_word2vec(trained, p)
    q = tmp_path / "q.txt"
    q.write_text(": only\nman woman king queen\nman woman boy girl\n")
    pairs = tmp_path / "p.tsv"
    pairs.write_text("man\twoman\t8\nking\tqueen\t9\nboy\tcar\t1\n")
    rc, out, err = run_cli(
        capsys,
        "eval", "--vectors", str(p), "--text", "--analogies", str(q), "--similarity", str(pairs),
        WS, "--method", "mul", "--restrict-vocab", "2000", "--table",
    )  # fmt: skip
    assert rc == 0
    res = json.loads(out)
    want = evaluate_word_analogies(trained, q, method="mul", restrict_vocab=2000)
    assert res["analogies"]["method"] == "mul" and res["analogies"]["questions"] == 2
    assert res["analogies"]["accuracy"] == want.score
    assert [s["path"] for s in res["similarity"]] == [str(pairs), WS]
    sp = evaluate_word_pairs(trained, WS, restrict_vocab=2000).spearman
    assert res["similarity"][1]["spearman"] == pytest.approx(sp, abs=1e-12)
    assert "Total accuracy" in err and "Spearman" in err
    rc, out, _ = run_cli(capsys, "eval", "--vectors", str(p), "--no-analogies", "--no-similarity")
    assert rc == 0 and set(json.loads(out)) == {"vectors", "seconds"}


def test_cli_eval_errors(tmp_path, capsys, trained):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"2 2\nthe 1 2\nof 1\n")
    rc, out, err = run_cli(capsys, "eval", "--vectors", str(bad))
    assert rc == 2 and out == "" and "line 3" in err and "found 1" in err
    rc, out, err = run_cli(capsys, "eval", "--vectors", str(tmp_path / "missing.bin"))
    assert rc == 2 and "No such file" in err
    p = tmp_path / "v.bin"
    write_word2vec(trained, p, binary=True)
    oov_pairs = tmp_path / "oov.tsv"
    oov_pairs.write_text("nosuchword\tnorthis\t3\n")
    rc, out, err = run_cli(
        capsys, "eval", "--vectors", str(p), "--no-analogies", "--similarity", str(oov_pairs)
    )
    assert rc == 0 and "warning" in err and "no usable word pairs" in err
    assert json.loads(out)["similarity"][0]["spearman"] is None
    rc, out, err = run_cli(capsys, "eval", "--vectors", str(p), "--analogies", str(oov_pairs))
    assert rc == 2 and "line 1: question before the first" in err


def test_cli_neighbors(tmp_path, capsys, trained):
    p = tmp_path / "v.bin"
    write_word2vec(trained, p, binary=True)
    rc, out, err = run_cli(
        capsys, "neighbors", "--vectors", str(p), "the", "nosuchword", "The", "king", "--topn", "4"
    )
    assert rc == 0
    res = json.loads(out)
    want = nearest_neighbors(trained, ["the", "king"], topn=4)
    assert res["neighbors"] == {w: [[n, s] for n, s in want[w]] for w in want}
    assert res["unknown"] == ["nosuchword", "The"]
    assert "'nosuchword' is not in the vocabulary" in err
    assert "'The' is not in the vocabulary" in err and "case variants in the file: the" in err
    rc, _, err = run_cli(capsys, "neighbors", "--vectors", str(p), "the", "--table")
    assert rc == 0 and "the\n" in err
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"2 2\nthe " + b"\0" * 8)
    rc, out, err = run_cli(capsys, "neighbors", "--vectors", str(bad), "--binary", "the")
    assert rc == 2 and out == "" and "byte offset 16" in err
