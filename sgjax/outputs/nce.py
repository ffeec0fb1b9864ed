"""Noise-contrastive estimation (Gutmann & Hyvärinen 2010; Mnih & Teh 2012).

For a pair (h, w_O) and K noise words W_neg drawn from P_n (:mod:`sgjax.outputs.sampling`),
NCE tells the data word from the noise words by logistic regression on the score shifted by
the log expected count of the word among the K draws, log(K P_n(w)) (``consts["log_kpn"]``):

    Delta(w) = u_w - log(K P_n(w)),  u_w = v'_w . h
    E = -log s(Delta(w_O)) - sum_{w_j in W_neg} log s(-Delta(w_j))
    e_j = dE/du_j = s(Delta(w_j)) - t_j,  dE/dv'_j = e_j h,  EH = sum_j e_j v'_j

(a negative equal to w_O is skipped, as in negative sampling; the unnormalised score has no
bias here). How the sampling objectives relate:

- Negative sampling (:mod:`sgjax.outputs.negative`) is NCE with K P_n(w) = 1 for every w
  (Mikolov et al. 2013): the same logistic terms without the shift, which learns PMI-like
  scores rather than the model's log-probabilities.
- As K grows, NCE's gradient tends to the gradient of the softmax's log-likelihood (MLE,
  :mod:`sgjax.outputs.softmax`), with u_w the self-normalised log-probability.
- The sampled softmax (:mod:`sgjax.outputs.sampled`) is an importance-sampled softmax over
  S = {w_O} ∪ W_neg with the same correction u_w - log(K P_n(w)); its gradient tends to the
  full softmax's as |S| -> V.

The layer is :func:`sgjax.outputs.negative.logistic_layer` with the score offset
-log(K P_n(w)), so it shares negative sampling's shared-rows rule and row curvature.
"""

from __future__ import annotations

from sgjax.outputs.base import register
from sgjax.outputs.negative import logistic_layer


def offset(rows, consts):
    """-log(K P_n(w)) of each row w."""
    return -consts["log_kpn"][rows]


LAYER = register("nce", logistic_layer(offset=offset))
