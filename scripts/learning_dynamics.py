"""Learning dynamics of skip-gram with negative sampling, update by update (PAPER.md).

Trains on a tiny two-topic toy corpus (pets and finance) with plain SGD through the public
API (sgjax.vocab, sgjax.encode, sgjax.batches, sgjax.noise, sgjax.model, sgjax.params,
sgjax.rules, sgjax.optim), records the input vector v_w of one word and the output
vectors v'_j of every word after each update,
and draws a grid of panels at a few moments of training: v_w (an arrow from the origin) and
the v' of its context words and of the words it only meets as negatives, projected on one
2-D basis (the top two singular directions, a PCA about the origin, of all the recorded
vectors, v_w's rows weighted as much as all the v' rows, so that the plane keeps v_w and
the dot products v'_j . v_w that the model turns into probabilities). The paper's updates

    v'_j <- v'_j - eta (sigma(v'_j . h) - t_j) h          (t_j = 1: context, 0: negative)
    v_w  <- v_w  - eta sum_j (sigma(v'_j . h) - t_j) v'_j  (h = v_w for skip-gram)

move the context v' towards h and the negatives away, and then v_w towards its contexts'
v' and away from the negatives'. At the start W' = 0, so only the v'_j move; v_w starts
moving once they are non-zero. The last panel shows the mean probability sigma(v'_j . v_w)
the model gives each group, and the level the contexts' probability tends to: at the
optimum of the objective v'_c . v_w = log(P(c|w) / (K P_n(c))), the PMI shifted by log K
(Levy and Goldberg 2014). The toy's contexts have a PMI of about 1.1, so the default K = 1
lifts them to about 0.75; with --negatives 3 they stay near 0.5 (v_w ends near orthogonal
to them) while the negatives still fall. Takes about 15 s on a 2-core CPU::

    python scripts/learning_dynamics.py --out /tmp/learning_dynamics.png
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sgjax.batches import epoch_batches
from sgjax.config import load_config
from sgjax.encode import EncodedCorpus
from sgjax.model import ModelSpec, complete
from sgjax.optim import apply_updates, build_optimizer
from sgjax.params import init_params
from sgjax.rules import value_and_rule
from sgjax.vocab import noise_distribution, vocab_from_counts

TOPICS = {
    "pets": (
        ["cat", "dog", "kitten", "puppy"],
        ["eats", "chases", "likes"],
        ["fish", "meat", "milk", "ball"],
    ),
    "finance": (
        ["bank", "market", "investor", "trader"],
        ["buys", "sells", "trades"],
        ["stock", "bond", "gold", "shares"],
    ),
}


def toy_corpus(lines: int, seed: int) -> list[list[str]]:
    """``lines`` sentences, each 1-3 'subject verb object' clauses of one topic."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    out = []
    for _ in range(lines):
        subjects, verbs, objects = TOPICS[names[rng.integers(len(names))]]
        sent: list[str] = []
        for _ in range(int(rng.integers(1, 4))):
            sent += [rng.choice(subjects), rng.choice(verbs), rng.choice(objects)]
        out.append([str(w) for w in sent])
    return out


def simulate(
    word: str = "cat",
    steps: int = 300,
    seed: int = 0,
    *,
    dim: int = 10,
    lr: float = 0.05,
    batch_size: int = 16,
    window: int = 2,
    negatives: int = 1,
    lines: int = 400,
) -> dict:
    """Train SGNS for ``steps`` SGD updates and record, after each (index 0: before any),
    ``v_w`` (steps+1, N) and ``W_out`` (steps+1, V, N). Also returns the vocabulary words,
    the context words of ``word`` seen in the batches and the words drawn as its negatives
    that never were its contexts, and the loss of every update."""
    sentences = toy_corpus(lines, seed)
    counts: dict[str, int] = {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    vocab = vocab_from_counts(counts, min_count=1)
    if word not in vocab.index:
        raise SystemExit(f"{word!r} is not in the toy corpus; choose one of {vocab.words}")
    wid = vocab.index[word]
    encoded = EncodedCorpus.from_sentences(
        [[vocab.index[w] for w in s] for s in sentences], vocab_size=len(vocab)
    )
    model = ModelSpec(input="skipgram", output="negative", negatives=negatives)
    consts = model.layer.prepare(vocab, model)
    cfg = load_config(
        None, ["optimizer.name=sgd", f"optimizer.learning_rate={lr}", "optimizer.schedule=constant"]
    )
    opt = build_optimizer(cfg.optimizer, steps)
    key, k_init = jax.random.split(jax.random.PRNGKey(seed))
    params = init_params(k_init, len(vocab), dim, "negative")
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, batch, key):
        ex = complete(key, batch, consts, model)
        E, grads = value_and_rule(params, ex, model, consts)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = apply_updates(params, updates)
        return params, opt_state, E, ex["negatives"]

    def batches():
        epoch = 0
        while True:
            yield from epoch_batches(
                encoded,
                vocab,
                window=window,
                sample=0.0,
                batch_size=batch_size,
                seed=seed,
                epoch=epoch,
            )
            epoch += 1

    v_w = [np.asarray(params["W"][wid])]
    w_out = [np.asarray(params["W_out"])]
    ctx_count = np.zeros(len(vocab))
    neg_seen: set[int] = set()
    losses = []
    for _, batch in zip(range(steps), batches(), strict=False):
        key, sub = jax.random.split(key)
        b = {k: jnp.asarray(batch[k]) for k in ("center", "context", "mask")}
        params, opt_state, E, negs = step(params, opt_state, b, sub)  # negs: (B, H=1, C, K)
        mine = batch["center"] == wid
        np.add.at(ctx_count, batch["context"][mine][batch["mask"][mine]], 1)
        neg_seen.update(np.asarray(negs)[:, 0][mine][batch["mask"][mine]].ravel().tolist())
        v_w.append(np.asarray(params["W"][wid]))
        w_out.append(np.asarray(params["W_out"]))
        losses.append(float(E))
    ctx_count[wid] = 0
    ctx_seen = set(np.flatnonzero(ctx_count).tolist())
    ctx = sorted(ctx_seen)
    # the optimum of the SGNS objective for a (w, c) pair seen with frequency P(c|w):
    # v'_c . v_w = log(P(c|w) / (K P_n(c))), the shifted PMI of Levy and Goldberg (2014)
    p_n = noise_distribution(vocab, 0.75)
    optimum = np.log(ctx_count[ctx] / ctx_count.sum() / (negatives * p_n[ctx]))
    return {
        "word": word,
        "words": vocab.words,
        "v_w": np.stack(v_w),
        "W_out": np.stack(w_out),
        "contexts": ctx,
        "optimum_logit": optimum,
        "K": negatives,
        "negatives": sorted(neg_seen - ctx_seen - {wid}),
        "loss": np.asarray(losses),
        "lr": lr,
    }


def pca_basis(X: np.ndarray) -> np.ndarray:
    """The first two right singular vectors (2, N) of the rows of X, not centred: a PCA
    about the origin, so that the zero vector stays at (0, 0) and the directions that the
    dot products v'_j . v_w measure are kept as far as two dimensions can keep them."""
    _, _, Vt = np.linalg.svd(np.asarray(X, np.float64), full_matrices=False)
    basis = np.zeros((2, X.shape[1]))
    basis[: min(2, Vt.shape[0])] = Vt[:2]
    return basis


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def plot(rec: dict, out: str, panels: int = 7) -> None:
    """The grid: ``panels`` PCA snapshots and a probability panel, written to ``out``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v_w, W_out = rec["v_w"], rec["W_out"]
    if not (np.isfinite(v_w).all() and np.isfinite(W_out).all()):
        raise ValueError("training diverged (non-finite vectors): lower --lr")
    ctx, neg, words = rec["contexts"], rec["negatives"], rec["words"]
    T = v_w.shape[0] - 1
    outs = W_out[:, ctx + neg].reshape(-1, v_w.shape[1])
    # v_w's T+1 rows weigh as much as the (T+1) x |ctx + neg| output rows, so that v_w lies
    # near the plane and the plane keeps its dot products with the v'
    weight = np.sqrt(outs.shape[0] / v_w.shape[0])
    basis = pca_basis(np.concatenate([weight * v_w, outs]))
    P_w, P_ctx, P_neg = v_w @ basis.T, W_out[:, ctx] @ basis.T, W_out[:, neg] @ basis.T
    moments = np.unique(np.round(np.geomspace(1, T + 1, panels) - 1).astype(int))

    fig = Figure(figsize=(16, 8.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 4).ravel()
    w = rec["word"]
    for ax, t in zip(axes, moments, strict=False):
        pts = np.concatenate([P_w[t][None], P_ctx[t], P_neg[t], np.zeros((1, 2))])
        lo, hi = pts.min(0), pts.max(0)
        half = 0.55 * (hi - lo).max() + 1e-12  # each panel zoomed to its own points
        mid = (lo + hi) / 2
        ax.annotate(
            "", xy=P_w[t], xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": "tab:red"}
        )
        ax.scatter(*P_ctx[t].T, color="tab:blue", s=22, label="v' of contexts")
        ax.scatter(*P_neg[t].T, color="0.45", marker="x", s=22, label="v' of negatives")
        ax.scatter(*P_w[t], color="tab:red", marker="*", s=160, zorder=3, label=f"v_{w}")
        ax.scatter(0, 0, color="k", marker="+", s=40, zorder=3)
        for j, p in zip(ctx, P_ctx[t], strict=True):
            ax.annotate(words[j], p, fontsize=7, color="tab:blue", xytext=(2, 2),
                        textcoords="offset points")  # fmt: skip
        for j, p in zip(neg, P_neg[t], strict=True):
            ax.annotate(words[j], p, fontsize=7, color="0.35", xytext=(2, -8),
                        textcoords="offset points")  # fmt: skip
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[1] - half, mid[1] + half)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(f"after {t} update{'s' if t != 1 else ''} (scale {2 * half:.2g})", fontsize=10)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="best", fontsize=7)
    for ax in axes[len(moments) : -1]:
        ax.set_visible(False)

    ax = axes[-1]
    steps = np.arange(T + 1)
    s_ctx = sigmoid(np.einsum("tjn,tn->tj", W_out[:, ctx], v_w)).mean(1)
    s_neg = sigmoid(np.einsum("tjn,tn->tj", W_out[:, neg], v_w)).mean(1)
    ax.plot(steps, s_ctx, color="tab:blue", label=f"mean sigma(v'_c . v_{w}), contexts")
    ax.plot(steps, s_neg, color="0.45", label=f"mean sigma(v'_n . v_{w}), negatives")
    opt = float(sigmoid(rec["optimum_logit"]).mean())
    ax.axhline(opt, color="tab:blue", linestyle="--", linewidth=1,
               label=f"contexts at the optimum, sigma(PMI - log {rec['K']})")  # fmt: skip
    ax.axhline(0.5, color="0.8", linestyle=":")
    ax.set_xlim(0, T)
    ax.set_xlabel("SGD updates")
    ax.set_ylim(0, 1)
    ax.set_title("probability the model gives each group", fontsize=10)
    ax.legend(loc="best", fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.suptitle(
        f"skip-gram negative sampling, plain SGD (eta = {rec['lr']}): input vector v_{w} "
        f"and output vectors v' projected on the top-2 singular directions of all recorded vectors "
        "(+: the origin; each panel zoomed)\n"
        "v'_j <- v'_j - eta (sigma(v'_j.h) - t_j) h ;  "
        "v_w <- v_w - eta sum_j (sigma(v'_j.h) - t_j) v'_j ;  h = v_w",
        fontsize=11,
    )
    fig.savefig(out, format="png")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="learning_dynamics.png", metavar="PNG", help="figure path")
    p.add_argument("--steps", type=int, default=300, help="SGD updates to record (default 300)")
    p.add_argument("--seed", type=int, default=0, help="corpus, init and sampling seed")
    p.add_argument("--word", default="cat", help="the word whose v_w is followed (default cat)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate eta (default 0.05)")
    p.add_argument("--dim", type=int, default=10, help="embedding size N (default 10)")
    p.add_argument("--batch-size", type=int, default=16, help="centres per update (default 16)")
    p.add_argument("--negatives", type=int, default=1, help="negatives per pair K (default 1)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    t0 = time.perf_counter()
    rec = simulate(
        args.word,
        args.steps,
        args.seed,
        dim=args.dim,
        lr=args.lr,
        batch_size=args.batch_size,
        negatives=args.negatives,
    )
    if not rec["contexts"] or not rec["negatives"]:
        print(
            f"learning_dynamics: {args.word!r} met no context or no negative in {args.steps} "
            "updates; use more --steps",
            file=sys.stderr,
        )
        return 1
    plot(rec, args.out)
    print(
        f"learning_dynamics: {args.steps} updates, loss {rec['loss'][0]:.3f} -> "
        f"{rec['loss'][-1]:.3f}, {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
