"""WordVectors against gensim 4.4.0's KeyedVectors: the same calls on the same vectors.

Each row of CALLS is ``(id, call)``; ``call(kv, files)`` runs on sgjax's WordVectors and on a
gensim KeyedVectors filled through gensim's own ``add_vectors`` with the same words and
float32 vectors (not through ``to_gensim``), and the results must agree: floats to 1e-5,
ranked word lists word for word (the random vectors have no ties). The vectors have structure:
clusters of words, and pairs that differ by a shared offset (so analogies are partly
solvable), with varied lengths (so raw and unit vectors differ) and upper-case variants of a
few words (gensim's case-insensitive lookup). The documented differences are tested last.
"""

from __future__ import annotations

import math
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from sgjax.vectors import WordVectors

keyedvectors = pytest.importorskip("gensim.models.keyedvectors")
KeyedVectors = keyedvectors.KeyedVectors

DIM = 32
VEC = np.random.default_rng(7).standard_normal(DIM).astype(np.float32)
OOV = "nosuchword"


def structured_vectors(seed: int = 0) -> tuple[list[str], np.ndarray]:
    """503 words: 20 clusters of 20 (t{k}w{j}), 25 m{i}/f{i} and city{i}/country{i} pairs that
    differ by a shared offset plus noise, and M3, F7, CITY2 (random vectors); shuffled, with
    lengths spread over e^N(0, 0.5)."""
    rng = np.random.default_rng(seed)
    vecs: dict[str, np.ndarray] = {}
    for k, center in enumerate(2.0 * rng.standard_normal((20, DIM))):
        for j in range(20):
            vecs[f"t{k}w{j}"] = center + rng.standard_normal(DIM)
    gender, capital = 1.5 * rng.standard_normal((2, DIM))
    for i in range(25):
        vecs[f"m{i}"] = m = 2.0 * rng.standard_normal(DIM)
        vecs[f"f{i}"] = m + gender + 0.4 * rng.standard_normal(DIM)
        vecs[f"city{i}"] = c = 2.0 * rng.standard_normal(DIM)
        vecs[f"country{i}"] = c + capital + 0.4 * rng.standard_normal(DIM)
    for w in ("m3", "f7", "city2"):
        vecs[w.upper()] = 2.0 * rng.standard_normal(DIM)
    words = [list(vecs)[i] for i in rng.permutation(len(vecs))]
    scale = np.exp(rng.normal(0.0, 0.5, len(words)))[:, None]
    return words, (np.stack([vecs[w] for w in words]) * scale).astype(np.float32)


def write_analogies(path) -> str:
    lines = [": gender"]
    for i in range(24):
        a, b, c, d = f"m{i}", f"f{i}", f"m{i + 1}", f"f{i + 1}"
        lines.append(" ".join(x.upper() if i % 3 == 0 else x for x in (a, b, c, d)))
    lines += [f"m1 f1 {OOV} f2", "m1 f1 m2", ": capital"]
    lines += [f"city{i} country{i} city{(i + 5) % 25} country{(i + 5) % 25}" for i in range(25)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def write_pairs(path, seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    lines = ["# word1\tword2\tscore"]
    for i in range(12):
        lines.append(f"m{i}\tf{i}\t{7 + rng.random():.2f}")
        lines.append(f"t{i}w1\tt{i}w{2 + i}\t{6 + 2 * rng.random():.2f}")
        lines.append(f"t{i}w3\tt{i + 5}w4\t{2 * rng.random():.2f}")
        lines.append(f"city{i}\tm{i + 3}\t{3 * rng.random():.2f}")
    lines += ["M3\tF3\t8.5", f"m1\t{OOV}\t5.0", "not a pair"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    words, matrix = structured_vectors()
    ours = WordVectors.from_params(words, matrix)
    theirs = KeyedVectors(DIM)
    theirs.add_vectors(words, matrix.copy())
    tmp = tmp_path_factory.mktemp("parity")
    files = SimpleNamespace(
        tmp=tmp,
        analogies=write_analogies(tmp / "questions.txt"),
        pairs=write_pairs(tmp / "pairs.tsv"),
    )
    return ours, theirs, files


def file_round_trip(kv, files, binary: bool, **load) -> tuple[list, np.ndarray]:
    """Save with the object's own save_word2vec_format and load with its own loader."""
    path = files.tmp / f"{type(kv).__name__}-{int(binary)}-{len(load)}.w2v"
    kv.save_word2vec_format(str(path), binary=binary)
    back = type(kv).load_word2vec_format(str(path), binary=binary, **load)
    return list(back.index_to_key), back.vectors


def fill_then_norms(kv):
    kv.fill_norms()
    return kv.norms


CALLS = [
    # attributes and lookup
    ("index_to_key", lambda kv, f: list(kv.index_to_key)),
    ("key_to_index", lambda kv, f: dict(kv.key_to_index)),
    ("vectors", lambda kv, f: kv.vectors),
    ("vector_size", lambda kv, f: kv.vector_size),
    ("len", lambda kv, f: len(kv)),
    ("fill_norms", lambda kv, f: fill_then_norms(kv)),
    ("get_normed_vectors", lambda kv, f: kv.get_normed_vectors()),
    ("contains", lambda kv, f: [k in kv for k in ("t0w0", OOV, 3, 10_000, np.int64(7), -1)]),
    ("has_index_for", lambda kv, f: [kv.has_index_for(k) for k in ("m3", OOV, 502, 503)]),
    ("get_index-word", lambda kv, f: kv.get_index("t1w2")),
    ("get_index-int", lambda kv, f: kv.get_index(5)),
    ("get_index-default", lambda kv, f: kv.get_index(OOV, -1)),
    ("get_vector", lambda kv, f: kv.get_vector("t2w3")),
    ("get_vector-norm", lambda kv, f: kv.get_vector("t2w3", norm=True)),
    ("getitem-word", lambda kv, f: kv["t0w1"]),
    ("getitem-int", lambda kv, f: kv[4]),
    ("getitem-list", lambda kv, f: kv[["t0w1", 4, "M3"]]),
    # means and pairwise similarity
    ("get_mean_vector", lambda kv, f: kv.get_mean_vector(["t0w1", "m3"])),
    (
        "get_mean_vector-weights-raw-post",
        lambda kv, f: kv.get_mean_vector(
            ["t0w1", VEC, "m3"], [1.0, 0.5, -2.0], pre_normalize=False, post_normalize=True
        ),
    ),
    ("get_mean_vector-missing-ignored", lambda kv, f: kv.get_mean_vector(["f1", OOV, "f2"])),
    ("similarity", lambda kv, f: kv.similarity("m1", "f1")),
    ("similarity-int", lambda kv, f: kv.similarity(3, "m1")),
    ("distance", lambda kv, f: kv.distance("t3w1", "t3w2")),
    ("n_similarity", lambda kv, f: kv.n_similarity(["m1", "m2"], ["f1", "f2", "t0w0"])),
    ("n_similarity-missing-ignored", lambda kv, f: kv.n_similarity(["m1", OOV], ["f1"])),
    ("distances-all", lambda kv, f: kv.distances("m1")),
    ("distances-some", lambda kv, f: kv.distances("m1", ["f1", "t2w2", 9])),
    ("distances-vector", lambda kv, f: kv.distances(VEC, ("f1", "t2w2"))),
    ("cosine_similarities", lambda kv, f: kv.cosine_similarities(VEC, kv.vectors[:50])),
    # neighbours
    ("most_similar", lambda kv, f: kv.most_similar("m1")),
    ("most_similar-pos-neg", lambda kv, f: kv.most_similar(["f1", "m2"], ["m1"], topn=5)),
    (
        "most_similar-restrict_vocab",
        lambda kv, f: kv.most_similar(positive=["city3", "f1"], negative=["m1"], restrict_vocab=90),
    ),
    ("most_similar-negative-only", lambda kv, f: kv.most_similar(negative=["t5w5"], topn=7)),
    (
        "most_similar-weights",
        lambda kv, f: kv.most_similar([("t4w1", 2.0), "t4w2"], [("t9w9", -0.5)], topn=6),
    ),
    ("most_similar-vector-and-int", lambda kv, f: kv.most_similar([VEC, 11], topn=8)),
    ("most_similar-2d-array", lambda kv, f: kv.most_similar(kv.vectors[[1, 2]], topn=4)),
    ("most_similar-clip", lambda kv, f: kv.most_similar("m1", topn=5, clip_start=40, clip_end=300)),
    ("most_similar-topn-None", lambda kv, f: kv.most_similar("m1", topn=None, restrict_vocab=77)),
    ("most_similar-topn-0", lambda kv, f: kv.most_similar("m1", topn=0)),
    ("most_similar-topn-all", lambda kv, f: kv.most_similar(["m1", "f2"], topn=600)),
    ("most_similar_cosmul", lambda kv, f: kv.most_similar_cosmul(["f1", "m2"], ["m1"], topn=5)),
    ("most_similar_cosmul-one", lambda kv, f: kv.most_similar_cosmul("country4")),
    ("most_similar_cosmul-vector", lambda kv, f: kv.most_similar_cosmul([VEC, "t1w1"], topn=4)),
    ("most_similar_cosmul-topn-None", lambda kv, f: kv.most_similar_cosmul(["m1"], ["f1"], None)),
    ("similar_by_word", lambda kv, f: kv.similar_by_word("t6w6", topn=4)),
    ("similar_by_key", lambda kv, f: kv.similar_by_key("city9", 3, restrict_vocab=200)),
    ("similar_by_vector", lambda kv, f: kv.similar_by_vector(VEC, topn=5)),
    ("similar_by_vector-topn-None", lambda kv, f: kv.similar_by_vector(VEC, topn=None)),
    ("doesnt_match", lambda kv, f: kv.doesnt_match(["t1w1", "t1w2", "t1w3", "m5"])),
    ("doesnt_match-oov", lambda kv, f: kv.doesnt_match(["t2w1", OOV, "t2w5", "city1", "t2w7"])),
    ("rank_by_centrality", lambda kv, f: kv.rank_by_centrality(["t1w1", "t1w2", "t3w3", "f0"])),
    ("rank", lambda kv, f: kv.rank("t8w1", "t8w2")),
    ("rank-far", lambda kv, f: kv.rank("m1", "t0w0")),
    ("closer_than", lambda kv, f: kv.closer_than("t8w1", "t8w2")),
    ("closer_than-far", lambda kv, f: kv.closer_than("m1", "city7")),
    ("words_closer_than", lambda kv, f: kv.words_closer_than("f3", "m3")),
    ("most_similar_to_given", lambda kv, f: kv.most_similar_to_given("m1", ["t0w0", "f1", 7])),
    ("relative_cosine_similarity", lambda kv, f: kv.relative_cosine_similarity("m2", "f2")),
    # evaluation
    ("evaluate_word_analogies", lambda kv, f: kv.evaluate_word_analogies(f.analogies)),
    (
        "evaluate_word_analogies-restricted",
        lambda kv, f: kv.evaluate_word_analogies(f.analogies, restrict_vocab=250),
    ),
    (
        "evaluate_word_analogies-case-dummy",
        lambda kv, f: kv.evaluate_word_analogies(
            f.analogies, case_insensitive=False, dummy4unknown=True
        ),
    ),
    ("evaluate_word_pairs", lambda kv, f: kv.evaluate_word_pairs(f.pairs)),
    (
        "evaluate_word_pairs-dummy4unknown",
        lambda kv, f: kv.evaluate_word_pairs(f.pairs, dummy4unknown=True),
    ),
    (
        "evaluate_word_pairs-case-restricted",
        lambda kv, f: kv.evaluate_word_pairs(f.pairs, case_insensitive=False, restrict_vocab=300),
    ),
    # files
    ("word2vec_format-text", lambda kv, f: file_round_trip(kv, f, binary=False)),
    ("word2vec_format-binary", lambda kv, f: file_round_trip(kv, f, binary=True)),
    ("word2vec_format-limit", lambda kv, f: file_round_trip(kv, f, binary=True, limit=40)),
]


def call_quietly(call, kv, files):
    """The call's result, or the type of the exception it raised; warnings are not compared
    (gensim logs where sgjax warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(kv, files)
        except Exception as e:  # noqa: BLE001 - compared: both must raise alike
            return type(e)


def assert_same(ours, theirs, where: str = "result") -> None:
    """Equal structure; floats and arrays to 1e-5; words, ints and bools exactly."""
    if isinstance(theirs, type):  # an exception type
        assert isinstance(ours, type) and issubclass(ours, theirs), f"{where}: {ours} vs {theirs}"
    elif isinstance(theirs, np.ndarray) or isinstance(ours, np.ndarray):
        a, b = np.asarray(ours), np.asarray(theirs)
        assert a.shape == b.shape, f"{where}: shape {a.shape} vs {b.shape}"
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=where)
    elif isinstance(theirs, (bool, np.bool_, str)):
        assert type(ours) is type(theirs) and ours == theirs, f"{where}: {ours!r} vs {theirs!r}"
    elif isinstance(theirs, (int, np.integer)):
        assert isinstance(ours, (int, np.integer)) and ours == theirs, (
            f"{where}: {ours} vs {theirs}"
        )
    elif isinstance(theirs, (float, np.floating)):
        assert isinstance(ours, (float, np.floating)), f"{where}: {ours!r} is not a float"
        if math.isnan(theirs):
            assert math.isnan(ours), f"{where}: {ours} vs nan"
        else:
            assert ours == pytest.approx(float(theirs), rel=1e-5, abs=1e-5), where
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), f"{where}: keys differ"
        for k in theirs:
            assert_same(ours[k], theirs[k], f"{where}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):  # scipy's correlation results are tuples too
        assert isinstance(ours, (list, tuple)), f"{where}: {type(ours).__name__}"
        assert len(ours) == len(theirs), f"{where}: length {len(ours)} vs {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        raise AssertionError(f"{where}: cannot compare {type(theirs).__name__}")


@pytest.mark.parametrize("call", [pytest.param(c, id=name) for name, c in CALLS])
def test_same_as_gensim(both, call):
    ours, theirs, files = both
    got, want = call_quietly(call, ours, files), call_quietly(call, theirs, files)
    assert not isinstance(want, type), f"gensim raised {want.__name__}: a broken table row"
    assert_same(got, want)


ERRORS = [
    # (call, the exception both raise)
    (lambda kv: kv.get_index(OOV), KeyError),
    (lambda kv: kv[OOV], KeyError),
    (lambda kv: kv.get_vector(503), KeyError),
    (lambda kv: kv.similarity("m1", OOV), KeyError),
    (lambda kv: kv.most_similar(["m1", OOV]), KeyError),
    (lambda kv: kv.most_similar_cosmul(negative=["m1"]), ValueError),
    (lambda kv: kv.most_similar_cosmul([OOV]), KeyError),
    (lambda kv: kv.get_mean_vector([]), ValueError),
    (lambda kv: kv.get_mean_vector(["m1", OOV], ignore_missing=False), KeyError),
    (lambda kv: kv.get_mean_vector(["m1", "f1"], weights=[1.0]), ValueError),
    (lambda kv: kv.n_similarity([], ["m1"]), ZeroDivisionError),
    (lambda kv: kv.doesnt_match([OOV, "zzz"]), ValueError),
    (lambda kv: kv.closer_than("m1", OOV), KeyError),
]


@pytest.mark.parametrize(("call", "error"), ERRORS)
def test_raises_as_gensim(both, call, error):
    ours, theirs, _ = both
    for kv in (ours, theirs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(error):
                call(kv)


REQUIRED = """index_to_key key_to_index vectors vector_size len contains has_index_for get_index
get_vector getitem get_mean_vector similarity n_similarity distance distances most_similar
most_similar_cosmul similar_by_word similar_by_vector similar_by_key doesnt_match rank
closer_than words_closer_than cosine_similarities get_normed_vectors fill_norms
evaluate_word_analogies evaluate_word_pairs word2vec_format""".split()


def test_the_table_covers_the_surface():
    covered = {name.split("-")[0] for name, _ in CALLS}
    assert set(REQUIRED) <= covered, set(REQUIRED) - covered
    assert len(covered) >= 20


# --- files, across the two ----------------------------------------------------------------------
@pytest.mark.parametrize("binary", [False, True])
def test_each_reads_the_others_files(both, tmp_path, binary):
    ours, theirs, _ = both
    mine, gensims = tmp_path / "sgjax.w2v", tmp_path / "gensim.w2v"
    ours.save_word2vec_format(mine, binary=binary, prefix="p_")
    theirs.save_word2vec_format(str(gensims), binary=binary, prefix="p_")
    for path in (mine, gensims):
        a = WordVectors.load_word2vec_format(path, binary=binary)
        b = KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert list(a.index_to_key) == b.index_to_key == ["p_" + w for w in ours.words]
        np.testing.assert_array_equal(a.vectors, b.vectors)  # both formats restore float32
        np.testing.assert_array_equal(a.vectors, ours.vectors)


@pytest.mark.parametrize(
    ("method", "kwargs", "match"),
    [
        ("load", {"fvocab": "counts.txt"}, "fvocab"),
        ("load", {"encoding": "latin-1"}, "UTF-8 only"),
        ("load", {"datatype": np.float16}, "float32 only"),
        ("load", {"no_header": True}, "no_header"),
        ("save", {"fvocab": "counts.txt"}, "fvocab"),
        ("save", {"write_header": False}, "write_header"),
        ("save", {"append": True}, "append"),
        ("save", {"total_vec": 9}, "total_vec"),
    ],
)
def test_unsupported_file_arguments_name_the_file(both, tmp_path, method, kwargs, match):
    ours = both[0]
    path = tmp_path / "v.txt"
    ours.save_word2vec_format(path)
    call = WordVectors.load_word2vec_format if method == "load" else ours.save_word2vec_format
    with pytest.raises(ValueError, match=match) as info:
        call(path, **kwargs)
    assert str(path) in str(info.value)


def test_load_keeps_the_first_of_a_repeated_word_as_gensim(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("3 2\na 1 2\nb 3 4\na 5 6\n")
    ours = WordVectors.load_word2vec_format(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = KeyedVectors.load_word2vec_format(str(path))
    assert list(ours.index_to_key) == theirs.index_to_key[:2] == ["a", "b"]
    np.testing.assert_array_equal(ours.vectors, theirs.vectors[:2])
    # gensim 4.4.0 leaves the slot it allocated for the duplicate: a None key, a zero row
    assert theirs.index_to_key[2:] == [None] and not theirs.vectors[2:].any()


# --- conversions --------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Adding single vectors:UserWarning")
def test_to_gensim_and_back(both):
    ours, theirs, _ = both
    g = ours.to_gensim()
    assert isinstance(g, KeyedVectors) and g.index_to_key == list(ours.words)
    np.testing.assert_array_equal(g.vectors, ours.vectors)
    assert g.vectors.flags.writeable and not np.shares_memory(g.vectors, ours.vectors)
    assert g.most_similar(["f1", "m2"], ["m1"]) == theirs.most_similar(["f1", "m2"], ["m1"])
    g.add_vector("new", VEC)  # a normal, growable gensim object
    assert g.get_index("new") == len(ours)
    back = WordVectors.from_gensim(theirs)
    assert back.words == ours.words
    np.testing.assert_array_equal(back.matrix, ours.matrix)


def test_from_gensim_takes_a_model_and_refuses_other_objects(both):
    theirs = both[1]
    model = SimpleNamespace(wv=theirs)  # a Word2Vec model holds its KeyedVectors in .wv
    assert WordVectors.from_gensim(model).words == tuple(theirs.index_to_key)
    with pytest.raises(TypeError, match="gensim KeyedVectors"):
        WordVectors.from_gensim(object())
    ints = KeyedVectors(2)
    ints.add_vectors([0, 1], np.ones((2, 2), np.float32))  # Doc2Vec-style int keys
    with pytest.raises(ValueError, match="non-empty strings"):
        WordVectors.from_gensim(ints)


def test_to_gensim_without_gensim(both, monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim.models", None)
    with pytest.raises(ImportError, match="to_gensim needs gensim: pip install gensim"):
        both[0].to_gensim()


# --- the documented differences -----------------------------------------------------------------
def test_zero_vectors_have_cosine_zero_where_gensim_has_nan():
    words = ["a", "b", "z"]
    m = np.array([[3, 4], [0, -2], [0, 0]], np.float32)
    ours = WordVectors.from_params(words, m)
    theirs = KeyedVectors(2)
    theirs.add_vectors(words, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gensim divides by zero
        assert np.isnan(theirs.distances("a")[2]) and ours.distances("a")[2] == 1.0
        assert np.isnan(theirs.get_vector("z", norm=True)).all()
        assert np.isnan(theirs.most_similar("a", topn=None)[2])
    np.testing.assert_array_equal(ours.get_vector("z", norm=True), [0, 0])
    assert ours.most_similar("a", topn=None)[2] == 0.0
    assert ours.cosine_similarities(np.zeros(2, np.float32), m).tolist() == [0, 0, 0]
    assert ours.similarity("a", "z") == theirs.similarity("a", "z") == 0.0  # gensim agrees here
    # z (distance 1) is closer to a than b is (distance 1.8); gensim's NaN is never closer
    assert ours.closer_than("a", "b") == ["z"] and ours.rank("a", "b") == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert theirs.closer_than("a", "b") == [] and theirs.rank("a", "b") == 1


@pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
def test_most_similar_cosmul_honours_restrict_vocab(both):
    ours, theirs, _ = both
    everything = theirs.most_similar_cosmul(["f1", "m2"], ["m1"], topn=None)
    np.testing.assert_allclose(
        ours.most_similar_cosmul(["f1", "m2"], ["m1"], topn=None, restrict_vocab=60),
        everything[:60],
        rtol=1e-5,
    )
    first = [w for w, _ in ours.most_similar_cosmul(["f1", "m2"], ["m1"], 5, restrict_vocab=60)]
    inputs = {ours.get_index(w) for w in ("f1", "m2", "m1")}
    best = [i for i in np.argsort(-everything[:60]) if i not in inputs][:5]
    assert first == [ours.words[i] for i in best]
    # gensim 4.4.0 ignores the argument
    assert theirs.most_similar_cosmul("m1", restrict_vocab=60) == theirs.most_similar_cosmul("m1")


def test_immutable(both):
    ours, theirs, _ = both
    assert not ours.vectors.flags.writeable and isinstance(ours.index_to_key, tuple)
    with pytest.raises(ValueError):
        ours.vectors[0, 0] = 1.0
    with pytest.raises(TypeError):
        ours.key_to_index["new"] = 0  # type: ignore[index]
    for call in (ours.unit_normalize_all, lambda: ours.init_sims(replace=True)):
        with pytest.raises(TypeError, match="unit_normalized"):
            call()
    unit = ours.unit_normalized()
    assert isinstance(unit, WordVectors) and unit.words == ours.words
    g = ours.to_gensim()
    g.unit_normalize_all()  # gensim: in place
    np.testing.assert_allclose(unit.vectors, g.vectors, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours.vectors[:3], axis=1), theirs.norms[:3])


def test_warnings_instead_of_gensim_log_lines(both):
    ours = both[0]
    with pytest.warns(UserWarning, match=rf"\['{OOV}'\] are not present"):
        assert ours.doesnt_match(["t2w1", OOV, "t2w5", "city1"]) == "city1"
    with pytest.warns(DeprecationWarning, match="closer_than"):
        ours.words_closer_than("f3", "m3")


def test_similarity_function_cosmul_in_analogies(both, monkeypatch):
    """gensim 4.4.0 ignores similarity_function; sgjax answers with 3CosMul, epsilon 1e-6 (whose
    protocol tests/test_evaluate.py checks against gensim's most_similar_cosmul)."""
    import sgjax.analogy as analogy

    ours, _, files = both
    seen = []
    original = analogy.evaluate_word_analogies

    def spy(*args, **kwargs):
        seen.append((kwargs["method"], kwargs["epsilon"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(analogy, "evaluate_word_analogies", spy)
    got = ours.evaluate_word_analogies(files.analogies, similarity_function="most_similar_cosmul")
    assert seen == [("mul", 1e-6)]
    assert got == original(ours, files.analogies, method="mul", epsilon=1e-6).to_gensim()
    ours.evaluate_word_analogies(files.analogies)
    assert seen[1][0] == "add"
    with pytest.raises(ValueError, match="similarity_function"):
        ours.evaluate_word_analogies(files.analogies, similarity_function="n_similarity")
