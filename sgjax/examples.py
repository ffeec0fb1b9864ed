"""Where a run's examples are made (``data.examples``): the registry of example sources.

Each :class:`ExampleSource` says what :func:`sgjax.loop.fit` iterates over in an epoch,
how many of those items one compiled call takes, which jitted call runs them, the device
constants it needs besides the output layer's, and how many optimizer steps an epoch makes
(the schedule's length, counted on seed 0's epoch 0 so runs that differ in the seed alone
share one compiled program). ``host``: numpy batches (:mod:`sgjax.batches`), stacked
``train.steps_per_call`` a call; ``device``: token chunks of ``steps_per_call x batch_size``
tokens, one a call, windowed in the step (:mod:`sgjax.device_examples`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from sgjax import device_examples
from sgjax.batches import epoch_batches, epoch_steps
from sgjax.config import Config
from sgjax.train import train_step_jit
from sgjax.vocab import Vocab, keep_probs


class ExampleSource(NamedTuple):
    epoch: Callable[[Config, Vocab, Any, int], Iterator[dict]]  # fit's items of an epoch
    per_call: Callable[[Config], int]  # items stacked into one call
    step: Callable  # (state, stacked items, tables, spec) -> (state, metrics), jitted
    tables: Callable[[Config, Vocab], dict]  # device constants besides the layer's
    steps_per_epoch: Callable[[Config, Vocab, Any, dict], int]  # seed 0's, epoch 0


def _host_args(cfg: Config) -> dict:
    return dict(
        window=cfg.model.window,
        sample=cfg.data.sample,
        batch_size=cfg.train.batch_size,
        seed=cfg.train.seed,
        window_buckets=cfg.train.window_buckets,
        shuffle=cfg.data.shuffle,
    )


def _host_epoch(cfg: Config, vocab: Vocab, encoded: Any, epoch: int) -> Iterator[dict]:
    return epoch_batches(encoded, vocab, epoch=epoch, **_host_args(cfg))


def _device_epoch(cfg: Config, vocab: Vocab, encoded: Any, epoch: int) -> Iterator[dict]:
    return device_examples.epoch_chunks(
        encoded,
        batch_size=cfg.train.batch_size,
        steps=cfg.train.steps_per_call,
        seed=cfg.train.seed,
        epoch=epoch,
        shuffle=cfg.data.shuffle,
    )


def _seed0(cfg: Config) -> Config:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=0))


def _device_steps(cfg: Config, vocab: Vocab, encoded: Any, tables: dict) -> int:
    key = jax.random.split(jax.random.PRNGKey(0))[1]  # seed 0's state key (init_state)
    chunks = _device_epoch(_seed0(cfg), vocab, encoded, 0)
    return device_examples.count_steps(chunks, key, tables["keep"], cfg.model.window)


#: ``data.examples`` -> its source.
SOURCES: dict[str, ExampleSource] = {
    "host": ExampleSource(
        epoch=_host_epoch,
        per_call=lambda cfg: cfg.train.steps_per_call,
        step=train_step_jit,
        tables=lambda cfg, vocab: {},
        steps_per_epoch=lambda cfg, vocab, enc, tables: epoch_steps(
            enc, vocab, epoch=0, **_host_args(_seed0(cfg))
        ),
    ),
    "device": ExampleSource(
        epoch=_device_epoch,
        per_call=lambda cfg: 1,
        step=device_examples.chunk_step_jit,
        tables=lambda cfg, vocab: {
            "keep": jnp.asarray(keep_probs(vocab, cfg.data.sample), jnp.float32)
        },
        steps_per_epoch=_device_steps,
    ),
}


def source(cfg: Config) -> ExampleSource:
    return SOURCES[str(cfg.data.examples)]
