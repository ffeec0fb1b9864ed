"""The Huffman tree matches word2vec.c's CreateBinaryTree and is a valid, optimal code."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from sgjax.huffman import build_huffman, path_fields


def c_tool_tree(counts):
    """A literal port of word2vec.c's CreateBinaryTree (per-word code and point lists)."""
    V = len(counts)
    count = list(counts) + [10**15] * V
    binary = [0] * (2 * V)
    parent = [0] * (2 * V)
    pos1, pos2 = V - 1, V
    for a in range(V - 1):
        mins = []
        for _ in range(2):
            if pos1 >= 0:
                if count[pos1] < count[pos2]:
                    mins.append(pos1)
                    pos1 -= 1
                else:
                    mins.append(pos2)
                    pos2 += 1
            else:
                mins.append(pos2)
                pos2 += 1
        count[V + a] = count[mins[0]] + count[mins[1]]
        parent[mins[0]] = V + a
        parent[mins[1]] = V + a
        binary[mins[1]] = 1
    codes, points = [], []
    for a in range(V):
        b, code, point = a, [], []
        while True:
            code.append(binary[b])
            point.append(b)
            b = parent[b]
            if b == V * 2 - 2:
                break
        i = len(code)
        c = [0] * i
        p = [0] * (i + 1)
        p[0] = V - 2
        for k in range(i):
            c[i - k - 1] = code[k]
            p[i - k] = point[k] - V
        codes.append(c)
        points.append(p[:i])
    return codes, points


def optimal_cost(counts):
    """Weighted path length of an optimal prefix code (heapq Huffman)."""
    h = list(map(int, counts))
    heapq.heapify(h)
    cost = 0
    while len(h) > 1:
        a, b = heapq.heappop(h), heapq.heappop(h)
        cost += a + b
        heapq.heappush(h, a + b)
    return cost


COUNTS = {
    "two": [5, 3],
    "ties": [4, 4, 4, 4, 4],
    "zipf": sorted(np.random.default_rng(0).zipf(1.4, 300).tolist(), reverse=True),
    "flat_tail": [1000, 500, 100] + [5] * 60,
}


@pytest.mark.parametrize("name", COUNTS)
def test_matches_word2vec_c(name):
    counts = COUNTS[name]
    tree = build_huffman(np.array(counts))
    codes, points = c_tool_tree(counts)
    for w in range(len(counts)):
        L = tree.lengths[w]
        assert L == len(codes[w])
        assert tree.codes[w, :L].tolist() == codes[w]
        assert tree.points[w, :L].tolist() == points[w]
        assert not tree.codes[w, L:].any() and not tree.points[w, L:].any()  # padding is 0


@pytest.mark.parametrize("name", COUNTS)
def test_valid_optimal_prefix_code(name):
    counts = np.array(COUNTS[name])
    V = len(counts)
    tree = build_huffman(counts)
    # V-1 inner nodes, the root (V-2) first on every path, all inner nodes used
    assert tree.points.min() >= 0 and tree.points.max() == V - 2
    assert (tree.points[:, 0] == V - 2).all()
    used = set(tree.points[tree.path_mask()].tolist())
    assert used == set(range(V - 1))
    # Kraft equality (a full binary tree) and prefix-freeness
    assert np.isclose(np.sum(2.0 ** -tree.lengths.astype(float)), 1.0)
    strs = ["".join(map(str, tree.codes[w, : tree.lengths[w]])) for w in range(V)]
    assert len(set(strs)) == V
    for a in strs:
        assert sum(b.startswith(a) for b in strs) == 1
    # optimal (Huffman) and the most frequent words get the shortest codes
    assert int((counts * tree.lengths).sum()) == optimal_cost(counts)
    assert (np.diff(tree.lengths) >= 0).all()


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="descending"):
        build_huffman(np.array([1, 5, 3]))
    with pytest.raises(ValueError, match="at least 2"):
        build_huffman(np.array([3]))


def test_path_fields_shapes():
    tree = build_huffman(np.array(COUNTS["zipf"]))
    words = np.array([[0, 5], [299, 1]])
    f = path_fields(tree, words)
    L = tree.max_length
    assert f["points"].shape == f["codes"].shape == f["path_mask"].shape == (2, 2, L)
    assert f["path_mask"].sum(-1).tolist() == tree.lengths[words].tolist()


def test_large_vocab():
    counts = (10**8 // np.arange(1, 200_001)).astype(np.int64)  # Zipf law, descending
    tree = build_huffman(counts)
    assert tree.points.shape[0] == 200_000
    assert np.isclose(np.sum(2.0 ** -tree.lengths.astype(float)), 1.0)
    assert int((counts * tree.lengths).sum()) == optimal_cost(counts)
