#!/usr/bin/env bash
# Build the original word2vec C tool (Mikolov et al., word2vec.c, Apache-2.0) for
# scripts/bench_throughput.py --c-binary. The source comes from a package registry: the
# sdist of PyPI's "word2vec" 0.11.1 wrapper ships the unmodified word2vec.c (sha256 below,
# checked), compiled here with the flags of the original makefile.
#
#   bash scripts/build_word2vec_c.sh [OUT_DIR]     # default: $TMPDIR/sgjax-bench
#   python scripts/bench_throughput.py --c-binary "$TMPDIR/sgjax-bench/word2vec"
set -euo pipefail
out="${1:-${TMPDIR:-/tmp}/sgjax-bench}"
sha=7fe3f308088e3a9000ffa10c70c232c16a4439ef297bd22ed2ee8253550caeb6
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --no-binary=:all: -d "$tmp" word2vec==0.11.1
tar -xzf "$tmp"/word2vec-0.11.1.tar.gz -C "$tmp"
src="$tmp/word2vec-0.11.1/word2vec/includes/word2vec.c"
echo "$sha  $src" | sha256sum --check --quiet
mkdir -p "$out"
gcc "$src" -o "$out/word2vec" -lm -pthread -O3 -march=native -funroll-loops -Wno-unused-result
echo "$out/word2vec"
