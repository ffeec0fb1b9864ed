"""The fused logistic-layer SGD step of ``logistic_step.cc`` as two Pallas kernels.

The same minibatch step as :func:`sgjax.kernels.logistic_step` (every example's gradient at
the parameters before the step, then all added; plain SGD; optionally row-damped), for a GPU
(Pallas' Triton lowering), and run on any backend in interpret mode (the tests, on a CPU):

1. :func:`_rule_kernel`, a grid over blocks of ``block`` examples: per example its hidden
   vectors h (mode 0: ``W[context_c]``, one per real slot; CBOW: their mean or sum), its S
   output rows v'_s = ``W_out[rows[b, s]]``, the scores u = h . v'_s + offset, the errors
   e_s = s(u) - t_s (0 for an unused entry), E, and each entry's update: ``scale_W EH``
   for W's rows (EH = sum_s e_s v'_s; CBOW paper: EH / C) and ``scale_Wout sum_h e_s h``
   for W_out's, written out as per-entry arrays; no table is written, so no program reads
   a row another one has updated.
2. :func:`_scatter_kernel`, one program per example: ``plgpu.atomic_add`` of its entries'
   rows into the tables, aliased in place, in any order (float sums up to rounding).

Between them, with ``damp``, the entries are scaled by :func:`sgjax.rules.damp_rows` (plain
JAX) from the curvatures the first kernel returns: s'(u_s) |h|^2 summed over an example's h
per W_out entry, and k_h = sum_s s'(u_s) |v'_s|^2 per hidden vector, skip-gram's W entry
of that slot (``sgjax.inputs.SKIPGRAM_CONTEXT.input_curvature``); CBOW's W rows are left
undamped (:func:`sgjax.kernels.mode_for` gives it a damped CBOW step only with
``train.row_damping_inputs: false``).

Shapes: the widths C (context slots), S (rows per example) and N are padded to powers of
two (Triton's blocks; padded slots and entries masked out, padded columns never loaded nor
added), the batch B to a multiple of ``block``.

Interpret mode (Pallas' HLO interpreter, jax 0.10) discharges ``atomic_add`` as a gather
and a ``.at[].set``: with a vector of row indices, two entries of one row in one call keep
only one of the adds, and a ``mask`` raises NotImplementedError. So each atomic_add here
adds one row at a scalar index (a loop over the entries, skipped by ``pl.when`` where the
index is padding), correct in both; its columns are ``pl.ds(0, N)`` in interpret mode and
a power-of-two range masked to N on a GPU (the one difference of the two paths). On a
GPU the adds' order varies from run to run: the tables agree to rounding, not bitwise.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from sgjax.rules import damp_rows
from sgjax.sparse import RowGrads

WHOLE = pl.no_block_spec  # the whole array in every program (tables, scales)


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _pad(x: jax.Array, shape: tuple, value=0) -> jax.Array:
    return jnp.pad(x, [(0, s - d) for s, d in zip(shape, x.shape, strict=True)],
                   constant_values=value)  # fmt: skip


def _gather(ref, idx: jax.Array, ok: jax.Array, n: int) -> jax.Array:
    """``ref[idx]`` (idx.shape + (Np,)), 0 where not ``ok`` and in the columns >= n; rows of
    a (rows, n) table, ``idx`` in range (a masked load: nothing out of range is read)."""
    cols = jnp.arange(_pow2(n), dtype=jnp.int32)
    at = (idx[..., None], cols.reshape((1,) * idx.ndim + (-1,)))
    return plgpu.load(ref.at[at], mask=ok[..., None] & (at[1] < n), other=0.0)


def _terms(h_BxN, hmask_B, v_BxSxN, t_BxS, use_BxS, off_BxS):
    """One hidden vector per example against its S rows: ``(E_B, e_BxS, EH_BxN)``, with
    E = sum_s -log s((2t - 1) u) = max(-x, 0) + log(1 + a), x = (2t - 1) u, a = exp(-|x|)
    (the terms of logistic_step.cc and :func:`sgjax.outputs.logistic.logistic_terms`,
    summed per term: Triton has no product reduction) and e_s = (1 - 2t) s(-x)."""
    u = jnp.sum(h_BxN[:, None, :] * v_BxSxN, axis=2) + off_BxS
    w = use_BxS & hmask_B[:, None]
    x = (2.0 * t_BxS - 1.0) * u
    a = jnp.exp(-jnp.abs(x))
    one_a = 1.0 + a
    E_B = jnp.sum(jnp.where(w, jnp.maximum(-x, 0.0) + jnp.log(one_a), 0.0), axis=1)
    e = jnp.where(w, (1.0 - 2.0 * t_BxS) * (jnp.where(x >= 0, a, 1.0) / one_a), 0.0)
    EH_BxN = jnp.sum(e[:, :, None] * v_BxSxN, axis=1)
    return E_B, e, EH_BxN


def _rule_kernel(
    scales_ref, ctx_ref, real_ref, rows_ref, use_ref, t_ref, off_ref, W_ref, Wo_ref,
    gW_ref, gWo_ref, E_ref, *k_refs, mode: int, n: int,
):  # fmt: skip
    """Phase 1 for a block of TB examples: gW (TB, G, Np) = scale_W EH per W entry (G = C
    slots for mode 0, one EH for CBOW), gWo (TB, S, Np) = scale_Wout sum_h e_s h, E (TB,),
    and with damping (``k_refs``) the curvatures k_h (TB, G) = sum_s s'(u_s) |v'_s|^2 per
    hidden vector and kWo (TB, S) = sum_h s'(u_s) |h|^2 per W_out entry. ``ctx`` and
    ``rows`` are in range (0 where ``real`` / ``use`` is 0)."""
    TB, C = ctx_ref.shape
    scale_w, scale_wo = scales_ref[0], scales_ref[1]
    rows = rows_ref[...]
    use = use_ref[...] != 0
    t, off = t_ref[...], off_ref[...]
    v_BxSxN = _gather(Wo_ref, rows, use, n)  # v'_s, 0 where unused
    damp = bool(k_refs)
    vv_BxS = jnp.sum(v_BxSxN * v_BxSxN, axis=2) if damp else None

    def curvature(e_BxS):  # s'(u) = s(u) (1 - s(u)) = |e| (1 - |e|)
        a = jnp.abs(e_BxS)
        return a * (1.0 - a)

    def slot(c):  # h_c (TB, Np) and its mask
        ok = real_ref[:, c] != 0
        return _gather(W_ref, ctx_ref[:, c], ok, n), ok

    if mode == 0:  # skip-gram, context orientation: each real slot c is a hidden vector

        def body(c, carry):
            E_B, gWo, kWo = carry
            h, ok = slot(c)
            E_c, e, EH = _terms(h, ok, v_BxSxN, t, use, off)
            gW_ref[:, c, :] = scale_w * EH
            gWo = gWo + e[:, :, None] * h[:, None, :]
            if damp:
                ks = curvature(e)
                kWo = kWo + ks * jnp.sum(h * h, axis=1)[:, None]
                k_refs[0][:, c] = jnp.sum(ks * vv_BxS, axis=1)
            return E_B + E_c, gWo, kWo

        init = (jnp.zeros((TB,), jnp.float32), jnp.zeros_like(v_BxSxN), jnp.zeros_like(t))
        E_B, gWo, kWo = jax.lax.fori_loop(0, C, body, init)
    else:  # CBOW: h = mean (modes 1, 2) or sum (3) of the real slots' rows

        def add(c, carry):
            h_sum, count = carry
            h, ok = slot(c)
            return h_sum + h, count + ok.astype(jnp.float32)

        zero = jnp.zeros((TB,), jnp.float32)
        h_sum, count = jax.lax.fori_loop(0, C, add, (jnp.zeros_like(v_BxSxN[:, 0]), zero))
        inv = 1.0 / jnp.maximum(count, 1.0)
        h = h_sum if mode == 3 else h_sum * inv[:, None]
        E_B, e, EH = _terms(h, count > 0, v_BxSxN, t, use, off)
        gW_ref[:, 0, :] = scale_w * (EH * inv[:, None] if mode == 2 else EH)
        gWo = e[:, :, None] * h[:, None, :]
        if damp:
            ks = curvature(e)
            kWo = ks * jnp.sum(h * h, axis=1)[:, None]
            k_refs[0][:, 0] = jnp.sum(ks * vv_BxS, axis=1)
    gWo_ref[...] = scale_wo * gWo
    E_ref[...] = E_B
    if damp:
        k_refs[1][...] = kWo


def _scatter_kernel(idxW_ref, gW_ref, idxWo_ref, gWo_ref, W_in, Wo_in, W_ref, Wo_ref, *, n: int,
                    masked: bool, rare: tuple[int, float] = (0, 1.0)):  # fmt: skip
    """Phase 2 for one example: ``table[r] += value`` for each of its entries (W: its C
    slots, the value of slot c or, CBOW, the one EH, times ``rare[1]`` for rows from
    ``rare[0]`` on; W_out: its S rows); an index >= the table's rows (padding, masked,
    unused) adds nothing. ``W_in``/``Wo_in`` are the tables aliased to ``W_ref``/``Wo_ref``."""
    del W_in, Wo_in

    def add(table, r, values_ref, g, f=None):
        @pl.when((r >= 0) & (r < table.shape[0]))
        def _():
            if masked:  # GPU: a power-of-two block of columns, the padded ones masked
                cols = jnp.arange(values_ref.shape[-1], dtype=jnp.int32)
                v = values_ref[0, g, :]
                plgpu.atomic_add(table, (r, cols), v if f is None else v * f, mask=cols < n)
            else:  # the interpreter's atomic_add takes no mask: the row's n columns
                v = values_ref[0, g, pl.ds(0, n)]
                plgpu.atomic_add(table, (r, pl.ds(0, n)), v if f is None else v * f)

    G = gW_ref.shape[1]

    def w_entry(c, _):
        r = idxW_ref[0, c]
        f = None if rare[1] == 1.0 else jnp.where(r >= rare[0], rare[1], 1.0).astype(W_ref.dtype)
        add(W_ref, r, gW_ref, c if G > 1 else 0, f)
        return _

    def wo_entry(s, _):
        add(Wo_ref, idxWo_ref[0, s], gWo_ref, s)
        return _

    jax.lax.fori_loop(0, idxW_ref.shape[1], w_entry, 0)
    jax.lax.fori_loop(0, idxWo_ref.shape[1], wo_entry, 0)


def pallas_logistic_step(
    W: jax.Array,
    W_out: jax.Array,
    batch: dict,
    rows: jax.Array,
    t: jax.Array,
    used: jax.Array,
    offset: jax.Array | None,
    scales: jax.Array,
    mode: int,
    damp: bool,
    *,
    interpret: bool | None = None,
    block: int | None = None,
    rare_from: int = 0,
    rare_scale: float = 1.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(W, W_out, E)`` after one SGD step of the batch, with the arguments of
    :func:`sgjax.kernels.logistic_step`: W (V, N), W_out (R, N), ``batch["context"]`` and
    ``["mask"]`` (B, C), the rows v'_j ``rows`` (B, S) with targets ``t``, 0/1 ``used`` and
    score ``offset`` (B, S) (:data:`sgjax.kernels.ROWS`), ``scales`` (3,): the factors of
    W's and W_out's gradients (-eta for SGD) and the learning rate (row damping's); ``mode``
    of :data:`sgjax.kernels.MODES`; float32 tables. ``interpret`` (None: unless the default
    backend is a GPU) runs Pallas' interpreter. ``block``: examples per program of the rule
    kernel, a power of two (None: 128 interpreted; on a GPU at most 128 with the block's
    (block, S, N) rows of W_out at most 2^14 floats, to fit a program's registers).
    W's rows from ``rare_from`` on take ``rare_scale`` x its factor (as the C++ kernel)."""
    if mode not in (0, 1, 2, 3):
        raise ValueError(f"pallas_logistic_step: mode {mode} is not one of 0, 1, 2, 3")
    if W.dtype != jnp.float32 or W_out.dtype != jnp.float32:
        raise ValueError(f"pallas_logistic_step: float32 tables only, not {W.dtype}")
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    i32, f32 = jnp.int32, jnp.float32
    V, N = W.shape
    R = W_out.shape[0]
    ctx, msk = batch["context"].astype(i32), batch["mask"]
    rows = rows.astype(i32)
    B, C = ctx.shape
    S = rows.shape[1]
    Cp, Sp, Np = _pow2(C), _pow2(S), _pow2(N)
    if block is None:
        block = 128 if interpret else max(1, min(128, 2**14 // (Sp * Np)))
    if block < 1 or block & (block - 1):
        raise ValueError(f"pallas_logistic_step: block {block} is not a power of two")
    Bp = -(-B // block) * block
    G = Cp if mode == 0 else 1
    real = (msk != 0) & (ctx >= 0) & (ctx < V)
    use = (used != 0) & (rows >= 0) & (rows < R)
    # entries' rows: in range for the loads (the masks say which count), out of range
    # (V, R: dropped) for the scatter and damping
    ctx_in = _pad(jnp.where(real, ctx, 0), (Bp, Cp))
    rows_in = _pad(jnp.where(use, rows, 0), (Bp, Sp))
    idxW = _pad(jnp.where(real, ctx, V), (Bp, Cp), V)
    idxWo = _pad(jnp.where(use, rows, R), (Bp, Sp), R)
    real_in, use_in = _pad(real.astype(i32), (Bp, Cp)), _pad(use.astype(i32), (Bp, Sp))
    offset = jnp.zeros(rows.shape, f32) if offset is None else offset  # ROWS: None, none
    t_in, off_in = _pad(t.astype(f32), (Bp, Sp)), _pad(offset.astype(f32), (Bp, Sp))
    scales = scales.astype(f32)

    params = None if interpret else plgpu.CompilerParams(num_warps=4)
    per_block = functools.partial(pl.BlockSpec, index_map=lambda i: (i, 0))  # 2-d, by rows
    out_shape = [
        jax.ShapeDtypeStruct((Bp, G, Np), f32),
        jax.ShapeDtypeStruct((Bp, Sp, Np), f32),
        jax.ShapeDtypeStruct((Bp,), f32),
    ]
    out_specs = [
        pl.BlockSpec((block, G, Np), lambda i: (i, 0, 0)),
        pl.BlockSpec((block, Sp, Np), lambda i: (i, 0, 0)),
        pl.BlockSpec((block,), lambda i: (i,)),
    ]
    if damp:
        out_shape += [jax.ShapeDtypeStruct((Bp, G), f32), jax.ShapeDtypeStruct((Bp, Sp), f32)]
        out_specs += [per_block((block, G)), per_block((block, Sp))]
    gW, gWo, E_B, *k = pl.pallas_call(
        functools.partial(_rule_kernel, mode=mode, n=N),
        out_shape=out_shape,
        grid=(Bp // block,),
        in_specs=[WHOLE, per_block((block, Cp)), per_block((block, Cp))]
        + [per_block((block, Sp))] * 4
        + [WHOLE, WHOLE],
        out_specs=out_specs,
        interpret=interpret,
        compiler_params=params,
        name="sgjax_logistic_rule",
    )(scales, ctx_in, real_in, rows_in, use_in, t_in, off_in, W, W_out)

    if damp:  # sgjax.rules.damp_rows: each row's summed update to sequential SGD's
        k_h, kWo = k
        grads = {"W_out": RowGrads(idxWo.reshape(-1), gWo.reshape(-1, Np))}
        curv = {"W_out": kWo.reshape(-1)}
        if mode == 0:  # skip-gram: k_h per slot (sgjax.inputs); CBOW's W rows undamped
            grads["W"] = RowGrads(idxW.reshape(-1), gW.reshape(-1, Np))
            curv["W"] = k_h.reshape(-1)
        damped = damp_rows(grads, curv, {"W": V, "W_out": R}, scales[2])
        gWo = damped["W_out"].value.reshape(gWo.shape)
        gW = damped["W"].value.reshape(gW.shape) if "W" in damped else gW

    W, W_out = pl.pallas_call(
        functools.partial(
            _scatter_kernel, n=N, masked=not interpret, rare=(int(rare_from), float(rare_scale))
        ),
        out_shape=[jax.ShapeDtypeStruct(W.shape, f32), jax.ShapeDtypeStruct(W_out.shape, f32)],
        grid=(Bp,),
        in_specs=[
            per_block((1, Cp)),
            pl.BlockSpec((1, gW.shape[1], Np), lambda i: (i, 0, 0)),
            per_block((1, Sp)),
            pl.BlockSpec((1, Sp, Np), lambda i: (i, 0, 0)),
            WHOLE,
            WHOLE,
        ],
        out_specs=[WHOLE, WHOLE],
        input_output_aliases={4: 0, 5: 1},
        interpret=interpret,
        compiler_params=params,
        name="sgjax_logistic_scatter",
    )(idxW, gW, idxWo, gWo, W, W_out)
    return W, W_out, E_B.sum()
