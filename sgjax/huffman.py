"""Huffman tree for hierarchical softmax, built exactly as word2vec.c's CreateBinaryTree.

Words must be sorted by descending count (the vocabulary's order). The tree has V leaves and
V-1 inner nodes; inner node n owns the output vector ``W_out[n]`` (the paper's v'_{n(w,j)}).
The root is inner node V-2. For word w, ``points[w, :lengths[w]]`` are the inner nodes on the
path from the root to the leaf (n(w,1) ... n(w,L(w)-1) in the paper) and ``codes[w, d]`` is
the branch taken at ``points[w, d]``: 0 means [[n(w,j+1) = ch(n(w,j))]] = +1, 1 means -1.
The most frequent words get the shortest codes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class HuffmanTree(NamedTuple):
    """Fixed-shape padded paths. Padding has ``points = 0``, ``codes = 0`` and is masked by
    ``d < lengths[w]`` (see :func:`path_mask`)."""

    points: np.ndarray  # (V, L) int32, inner-node ids in [0, V-2]
    codes: np.ndarray  # (V, L) int8, 0/1
    lengths: np.ndarray  # (V,) int32, path length L(w)-1 >= 1

    @property
    def max_length(self) -> int:
        return int(self.points.shape[1])

    def path_mask(self) -> np.ndarray:
        """(V, L) bool: True on real path entries."""
        return np.arange(self.max_length)[None, :] < self.lengths[:, None]


def build_huffman(counts: np.ndarray) -> HuffmanTree:
    """Build the tree from counts sorted in descending order (word2vec.c's two-queue method).

    O(V) with two queues: the leaves (already sorted) and the inner nodes (created in
    non-decreasing order), exactly as word2vec.c does it, so ties break the same way.
    """
    counts = np.asarray(counts, dtype=np.int64)
    V = int(counts.shape[0])
    if V < 2:
        raise ValueError(f"a Huffman tree needs at least 2 words, got {V}")
    if np.any(np.diff(counts) > 0):
        raise ValueError("counts must be sorted in descending order (the vocabulary's order)")
    count = np.empty(2 * V - 1, dtype=np.int64)
    count[:V] = counts
    count[V:] = np.iinfo(np.int64).max // 4
    parent = np.zeros(2 * V - 1, dtype=np.int64)
    binary = np.zeros(2 * V - 1, dtype=np.int8)
    pos1, pos2 = V - 1, V
    # The loop is inherently sequential (each merge depends on the last); it runs once per
    # vocabulary, about 1 s per million words in plain Python on list-backed arrays.
    c = count.tolist()
    par = [0] * (2 * V - 1)
    bits = [0] * (2 * V - 1)
    for a in range(V - 1):
        mins = []
        for _ in range(2):
            if pos1 >= 0 and c[pos1] < c[pos2]:
                mins.append(pos1)
                pos1 -= 1
            else:
                mins.append(pos2)
                pos2 += 1
        c[V + a] = c[mins[0]] + c[mins[1]]
        par[mins[0]] = V + a
        par[mins[1]] = V + a
        bits[mins[1]] = 1
    parent[:] = par
    binary[:] = bits

    root = 2 * V - 2
    # Depth of every node, computed top-down: a parent always has a larger index than its
    # children, so one descending sweep suffices.
    dep = [0] * (2 * V - 1)
    for n in range(root - 1, -1, -1):
        dep[n] = dep[par[n]] + 1
    lengths = np.asarray(dep[:V], dtype=np.int32)
    L = int(lengths.max())
    points = np.zeros((V, L), dtype=np.int32)
    codes = np.zeros((V, L), dtype=np.int8)
    # Walk every leaf up to the root at once (vectorised over words, L steps).
    node = np.arange(V, dtype=np.int64)
    pos = lengths.astype(np.int64) - 1  # fill from the leaf end towards the root
    active = pos >= 0
    while np.any(active):
        idx = np.flatnonzero(active)
        codes[idx, pos[idx]] = binary[node[idx]]
        points[idx, pos[idx]] = parent[node[idx]] - V
        node[idx] = parent[node[idx]]
        pos[idx] -= 1
        active = pos >= 0
    return HuffmanTree(points=points, codes=codes, lengths=lengths)


def path_fields(tree: HuffmanTree, words) -> dict:
    """The hierarchical-softmax fields of an example (sgjax.losses) for word ids ``words``.

    Works on numpy or jax arrays of any shape S: returns ``points`` (S + (L,)) int32,
    ``codes`` (S + (L,)) int8 and ``path_mask`` (S + (L,)) bool. Inside a jitted step pass the
    tree's arrays as device arrays (e.g. ``HuffmanTree(*map(jnp.asarray, tree))``).
    """
    xp = np if isinstance(tree.points, np.ndarray) and isinstance(words, np.ndarray) else None
    if xp is None:
        import jax.numpy as xp  # noqa: PLC0415
    L = tree.points.shape[1]
    lengths = xp.asarray(tree.lengths)[words]
    return {
        "points": xp.asarray(tree.points)[words],
        "codes": xp.asarray(tree.codes)[words],
        "path_mask": xp.arange(L) < lengths[..., None],
    }
