"""The Python API of a whole run: config -> vocabulary -> encoded corpus -> fit -> vectors
-> evaluation. ``sgjax train`` is a thin wrapper around :func:`train`; scripts and notebooks
call the same functions::

    from sgjax.config import load_config
    from sgjax.experiment import train

    cfg = load_config("configs/sg_ns.yaml", ["optimizer.name=adam", "train.epochs=1"])
    result = train(cfg, out_dir="runs/adam")
    result.vectors.most_similar("king")
    result.scores   # {"analogy": ..., "wordsim_spearman": ...}

Run directory (``out_dir``): ``config.yaml`` (resolved config), ``vocab.txt`` (word2vec.c
``-save-vocab`` format), ``metrics.jsonl`` (one JSON object a line: ``"event": "log"`` every
``train.log_every_steps`` steps, ``"event": "epoch"`` at each epoch's end with loss, lr,
words/s, epoch time and the evaluation scores), ``checkpoints/`` (see
:mod:`sgjax.checkpoint`), and at the end ``vectors.bin`` and ``vectors.txt`` (word2vec
binary and text formats, the input vectors W) and ``scores.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sgjax import checkpoint, ckpt_manager, examples, kernels, rundir, sharding
from sgjax.callbacks import Recorder
from sgjax.config import Config, load_config, to_yaml
from sgjax.continuation import continued_schedule, init_rows
from sgjax.corpus import resolve_paths
from sgjax.encode import encode_corpus
from sgjax.evaluate import NoValidPairsError, evaluate_word_analogies, evaluate_word_pairs
from sgjax.logwriters import keep_records_to, open_writers
from sgjax.loop import Hooks, fit, group_batches
from sgjax.model import ModelSpec
from sgjax.optim import build_optimizer, build_schedule
from sgjax.progress import Progress, sig
from sgjax.rules import rare_rows
from sgjax.timing import Clock, use_compile_cache
from sgjax.train import StepSpec, TrainState, init_state
from sgjax.vectors import WordVectors, read_word2vec, write_word2vec
from sgjax.vocab import Vocab, build_vocab, fixed_vocab, load_vocab, save_vocab

#: Words of the vectors evaluated before training, to read the evaluation files early.
EVAL_CHECK_WORDS = 1000


def default_corpus() -> str:
    """Path of the embedded default corpus (realtext-v1, 3.05M tokens)."""
    from importlib.resources import files

    return str(files("sgjax") / "data" / "realtext-v1.txt.xz")


def corpus_paths(cfg: Config) -> list[str]:
    c = cfg.data.corpus
    if c is None:
        return [default_corpus()]
    return [str(p) for p in (c if isinstance(c, (list, tuple)) else [c])]


@dataclasses.dataclass
class Run:
    """Everything a run builds before training: reusable by scripts."""

    cfg: Config
    vocab: Vocab
    encoded: Any
    tables: dict
    spec: StepSpec
    total_steps: int
    state: TrainState

    def batches(self, epoch: int) -> Iterator[dict]:
        """What :func:`sgjax.loop.fit` consumes in ``epoch`` (deterministic in the seed
        and the epoch): host batches of one step each, or with ``data.examples: device``
        token chunks (:mod:`sgjax.device_examples`)."""
        return _batches(self.cfg, self.vocab, self.encoded, epoch)

    @property
    def step(self) -> Callable:
        """The jitted call of one item of :meth:`calls`: :data:`sgjax.train.train_step_jit`,
        or the device path's :data:`sgjax.device_examples.chunk_step_jit`."""
        return examples.source(self.cfg).step

    def calls(self, epoch: int) -> Iterator[dict]:
        """The items of ``epoch`` stacked as one call takes them (``train.steps_per_call``
        host batches, or one chunk): each is the ``batch`` of one ``run.step(state, batch,
        run.tables, run.spec)`` (a custom loop; call ``state.next_epoch()`` after an
        epoch's last)."""
        return group_batches(self.batches(epoch), examples.source(self.cfg).per_call(self.cfg))


@dataclasses.dataclass
class Result:
    state: TrainState
    vectors: WordVectors
    scores: dict
    out_dir: Path | None
    timing: dict = dataclasses.field(default_factory=dict)  # sgjax.timing.Clock.report()
    history: list[dict] = dataclasses.field(default_factory=list)  # every record, in order


def build(cfg: Config, out_dir: str | os.PathLike | None = None, clock: Clock | None = None) -> Run:
    """Vocabulary, encoded corpus, device tables, optimizer and a fresh state (timed into
    ``clock``'s vocab, encode and setup phases)."""
    clock = clock or Clock()
    paths = corpus_paths(cfg)
    with clock("vocab"):
        if cfg.data.vocab:  # a fixed vocabulary, counted in this corpus
            vocab = fixed_vocab(cfg.data.vocab, paths)
        else:
            vocab = build_vocab(
                paths,
                min_count=cfg.data.min_count,
                max_vocab_size=cfg.data.max_vocab_size,
                max_line_tokens=cfg.data.max_line_tokens,
            )
    cache = cfg.data.cache_dir or (str(Path(out_dir) / "cache") if out_dir else None)
    with clock("encode"):
        encoded = encode_corpus(paths, vocab, cache, max_line_tokens=cfg.data.max_line_tokens)
    with clock("setup"):
        return _assemble(cfg, vocab, encoded)


def _with_epochs_of(cfg: Config, other: Config) -> Config:
    """``cfg`` with ``other``'s epochs and continuations (train.epochs, train.extended)."""
    t = dataclasses.replace(cfg.train, epochs=other.train.epochs, extended=other.train.extended)
    return dataclasses.replace(cfg, train=t)


def _check_resume_config(saved: Config, wanted: Config | None, out: Path) -> Config | None:
    """``wanted`` if a resume may go on under it: only more epochs and the keys of
    :data:`rundir.MAY_CHANGE` may differ from the run's config. (A ``wanted`` that records
    fewer continuations than the run, as a script that resumes with the same config
    again after a continuation does, gets the run's.)"""
    if wanted is None:
        return None
    ext, saved_ext = wanted.train.extended, saved.train.extended
    if len(ext) < len(saved_ext) and list(ext) == list(saved_ext[: len(ext)]):
        wanted = dataclasses.replace(
            wanted, train=dataclasses.replace(wanted.train, extended=saved_ext)
        )
    changes = rundir.config_changes(to_yaml(saved), to_yaml(wanted))
    changes = [c for c in changes if not c.startswith("train.epochs ")]
    if changes or wanted.train.epochs < saved.train.epochs:
        what = ", ".join(changes) or f"train.epochs ({saved.train.epochs} -> fewer)"
        raise rundir.RunDirError(
            f"resume: the config differs from {out / 'config.yaml'} in {what}; a resumed run "
            "may only get more train.epochs, or change keys of sgjax.rundir.MAY_CHANGE"
        )
    return wanted


def _continued(saved: Config, wanted: Config, step: int) -> Config:
    """``wanted`` with the continuation at ``step`` recorded (:mod:`sgjax.continuation`)."""
    t = wanted.train
    if t.epochs > saved.train.epochs:
        t = dataclasses.replace(t, extended=[*saved.train.extended, [step, saved.train.epochs]])
    return dataclasses.replace(wanted, train=t)


def _assemble(cfg: Config, vocab: Vocab, encoded: Any, fresh: bool = True) -> Run:
    m, t = cfg.model, cfg.train
    model = ModelSpec.from_config(m, cfg.data)
    tables = model.layer.prepare(vocab, model)  # device constants: noise sampler, tree, ...
    source = examples.source(cfg)
    tables = {**tables, **source.tables(cfg, vocab)}
    # steps per epoch, measured on epoch 0's batches of seed 0 (subsampling changes it by
    # << 1%): the schedule's length, a constant of the compiled step, is the same for every
    # seed, so runs that differ in the seed alone share one program (compilation cache)
    steps_per_epoch = source.steps_per_epoch(cfg, vocab, encoded, tables)
    total_steps = max(1, steps_per_epoch * t.epochs)
    schedule = continued_schedule(  # the plain schedule unless the run was continued
        lambda n: build_schedule(cfg.optimizer, n), steps_per_epoch, t.epochs, t.extended
    )
    optimizer = build_optimizer(cfg.optimizer, total_steps, schedule)
    spec = StepSpec(
        model=model,
        optimizer=optimizer,
        gradients=str(t.gradients),
        batch_parts=t.batch_parts,
        window_buckets=m.window if t.window_buckets and t.gradients == "explicit" else 0,
        row_update_cap=t.row_update_cap,
        row_damping=t.row_damping,
        row_damping_inputs=t.row_damping_inputs,
        **rare_rows(vocab.counts, cfg.optimizer),
        chunk_window=m.window if cfg.data.examples == "device" else 0,
    )
    dtype = jnp.dtype(str(t.dtype))
    spec = dataclasses.replace(
        spec,
        kernel=kernels.choose(
            str(t.kernel), spec, dtype, jax.default_backend(), cfg.mesh.data * cfg.mesh.model
        ),
        fused=str(t.kernel) if str(t.kernel) in kernels.FUSED else "cpu",
    )
    state = init_state(
        jax.random.PRNGKey(t.seed), len(vocab), m.dim, str(m.output), optimizer, dtype
    )
    if fresh and m.init_from:  # pretrained input vectors for the words they hold
        W, n = init_rows(np.asarray(state.params["W"]), vocab.words, read_word2vec(m.init_from))
        if n == 0:
            raise ValueError(f"model.init_from: {m.init_from} holds none of the run's words")
        state = state.replace(params={**state.params, "W": jnp.asarray(W, dtype)})
    return Run(cfg, vocab, encoded, tables, spec, total_steps, state)


def _fingerprint(cfg: Config, vocab: Vocab) -> dict:
    """What the run's checkpoints record of its config, vocabulary and corpus files."""
    files = resolve_paths(corpus_paths(cfg))
    return rundir.fingerprint(to_yaml(cfg), vocab.fingerprint(), files)


def _batches(cfg: Config, vocab: Vocab, encoded: Any, epoch: int):
    """What :func:`sgjax.loop.fit` iterates in ``epoch``: host batches or token chunks."""
    return examples.source(cfg).epoch(cfg, vocab, encoded, epoch)


def evaluate_vectors(cfg: Config, vectors: WordVectors) -> dict:
    """Analogy accuracy (3CosAdd) and word-pair similarity as configured in ``cfg.eval``
    (None: the shipped questions-words and WordSim-353; False: skipped)."""
    scores: dict = {}
    e = cfg.eval
    if e.analogies is not False:
        r = evaluate_word_analogies(vectors, e.analogies, restrict_vocab=e.restrict_vocab)
        scores["analogy"] = r.score
        scores["analogy_evaluated"] = r.total.evaluated
    if e.similarity is not False:
        try:
            s = evaluate_word_pairs(vectors, e.similarity, restrict_vocab=e.restrict_vocab)
        except NoValidPairsError:  # every pair out of vocabulary (e.g. a tiny corpus)
            scores.update(wordsim_spearman=None, wordsim_pearson=None, wordsim_oov_ratio=100.0)
        else:
            scores["wordsim_spearman"] = s.spearman
            scores["wordsim_pearson"] = s.pearson
            scores["wordsim_oov_ratio"] = s.oov_ratio
    return scores


def vectors_of(run: Run, state: TrainState) -> WordVectors:
    W = sharding.host_array(state.params["W"])[: len(run.vocab)]  # sharded: gathered, unpadded
    return WordVectors.from_params(run.vocab.words, np.asarray(W, np.float32))


def train(
    cfg: Config,
    out_dir: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    evaluate_each_epoch: bool | None = None,
    clock: Clock | None = None,
    callbacks: Sequence[Any] = (),
) -> Result:
    """Train as ``cfg`` says; with ``out_dir`` write the run directory (module docstring).

    ``resume=True`` continues from the newest readable checkpoint in ``out_dir`` (its
    config.yaml and vocab.txt are used, so the result equals an uninterrupted run's; a
    vocabulary, corpus or config changed since the checkpoint is an error,
    :mod:`sgjax.rundir`). A fresh run refuses a directory holding an old run unless
    ``overwrite``. The directory is locked while the run lasts. The vectors are
    evaluated at the end, and after every epoch too if ``evaluate_each_epoch`` (None:
    ``cfg.eval.every_epoch``). ``clock`` times the run's phases (:mod:`sgjax.timing`; the
    CLI passes one that counts from the process's start); ``Result.timing`` and the last
    line of ``metrics.jsonl`` give them. ``cfg.train.compile_cache`` points JAX's
    persistent compilation cache at its directory for this process. ``callbacks``
    (:class:`sgjax.callbacks.Callback`) see every record as it is made; ``Result.history``
    holds them all, with or without ``out_dir``.
    """
    args = (cfg, out_dir, resume, overwrite, progress, evaluate_each_epoch, clock, callbacks)
    if out_dir is None or not sharding.is_primary():  # only process 0 writes the directory
        if resume and out_dir is None:
            raise FileNotFoundError("resume needs the run directory (out_dir)")
        return _train(*args)
    with rundir.lock(out_dir):
        return _train(*args)


def _skipped(path: Path, reason: str) -> None:
    print(f"sgjax: warning: skipping checkpoint {path}: {reason}", file=sys.stderr, flush=True)


def _train(cfg, out_dir, resume, overwrite, progress, evaluate_each_epoch, clock, callbacks):
    out = Path(out_dir) if out_dir is not None else None
    clock = clock or Clock()
    if resume:
        found = checkpoint.candidates(out)
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint in {out}/checkpoints")
        # the run resumes under its own config with the keys that may change taken from cfg
        # (mesh, caches, logging: sgjax.rundir.MAY_CHANGE), then goes on under cfg's epochs
        saved = load_config(out / "config.yaml")
        wanted = _check_resume_config(saved, cfg, out)
        cfg = saved if wanted is None else _with_epochs_of(wanted, saved)
    elif out is not None and sharding.is_primary():
        rundir.check_fresh(out, overwrite)  # before anything is read or written
    use_compile_cache(cfg.train.compile_cache)
    if out is not None:  # a checkpoint will be written: orbax imported meanwhile
        ckpt_manager.warm_up()
    if resume:
        with clock("vocab"):
            vocab = load_vocab(out / "vocab.txt")
            fp = _fingerprint(cfg, vocab)  # checked before the corpus is encoded, and again
            newest, meta = found[0], {}  # against the one restored
            with contextlib.suppress(OSError, ValueError):  # unreadable: restore skips it
                meta = json.loads((newest / "meta.json").read_text(encoding="utf-8"))
            rundir.check_fingerprint(meta.get("fingerprint"), fp, str(newest))
        cache = cfg.data.cache_dir or str(out / "cache")
        with clock("encode"):
            encoded = encode_corpus(
                corpus_paths(cfg), vocab, cache, max_line_tokens=cfg.data.max_line_tokens
            )
        with clock("setup"):
            run = _assemble(cfg, vocab, encoded, fresh=False)
        with clock("checkpoint"):
            state, meta, path = checkpoint.restore_newest(  # onto cfg.mesh, from any mesh
                out, sharding.restore_target(cfg, run.state), pad_rows=True, on_skip=_skipped
            )
            if path != newest:  # an older one, after the newest failed: check it too
                rundir.check_fingerprint(meta.get("fingerprint"), fp, str(path))
            # on the device as the fresh state is, so the step's compiled program is reused
            run.state = jax.device_put(state)
            if sharding.is_primary():  # the records after it are made again
                keep_records_to(out, int(meta["step"]))
        if wanted is not None and to_yaml(wanted) != to_yaml(cfg):  # more epochs
            cfg = _continued(cfg, wanted, int(meta["step"]))
            with clock("setup"):  # the continued schedule (sgjax.continuation)
                state, run = run.state, _assemble(cfg, vocab, encoded, fresh=False)
                run.state = state
            fp = {**fp, "config": to_yaml(cfg)}  # the same vocabulary and corpus files
        if to_yaml(cfg) != to_yaml(saved) and sharding.is_primary():
            checkpoint.write_text_atomic(out / "config.yaml", to_yaml(cfg))
    else:
        run = build(cfg, out, clock)
        fp = _fingerprint(cfg, run.vocab)

    # --- scale-out (sgjax.sharding): a mesh of several devices and/or processes -------------
    plan = sharding.plan_for(cfg, len(run.vocab))  # None: one device, one process (as before)
    step_fn, bcfg, primary = (
        examples.source(cfg).step,
        sharding.local_config(cfg),
        sharding.is_primary(),
    )
    if plan is not None:
        run.state, step_fn = plan.place(run.state), plan.step()
    progress = progress and primary  # only process 0 prints and writes files
    # ---------------------------------------------------------------------------------------
    corpus_words = int(run.encoded.n_tokens)
    metrics_path = out / "metrics.jsonl" if out is not None and primary else None
    total_words = corpus_words * cfg.train.epochs
    done_words = corpus_words * int(run.state.epoch) + int(run.state.words)
    bar = Progress(total_words, done_words, progress)
    scores: dict = {}
    if evaluate_each_epoch is None:
        evaluate_each_epoch = bool(cfg.eval.every_epoch)
    with clock("eval"):  # a bad evaluation file fails now, not after training: read them
        n = min(EVAL_CHECK_WORDS, len(run.vocab))
        W = sharding.host_array(run.state.params["W"])[:n]
        evaluate_vectors(cfg, WordVectors.from_params(run.vocab.words[:n], np.asarray(W)))
    # the writers open (a missing tensorboardX fails here) before the run's files are written
    record = Recorder(open_writers(cfg.train.log_to, out) if metrics_path else None, callbacks)
    if not resume and metrics_path is not None:
        checkpoint.write_text_atomic(out / "config.yaml", to_yaml(cfg))
        save_vocab(run.vocab, out / "vocab.txt")

    def meta_of(state: TrainState) -> dict:
        return {
            "step": int(state.step),
            "epoch": int(state.epoch),
            "batch_in_epoch": int(state.batch_in_epoch),
            "words_total": corpus_words * int(state.epoch) + int(state.words),
            "fingerprint": fp,
        }

    # epoch, N-step and timed checkpoints are written while training goes on (one device,
    # one process); an interrupt's is complete before the run stops
    saver = None
    if out is not None:
        saver = checkpoint.Saver(
            out,
            background=plan is None and jax.process_count() == 1,
            keep=cfg.train.keep_checkpoints,
            keep_epochs=cfg.train.keep_epoch_checkpoints,
        )
    # by time (train.checkpoint_every_seconds), except where every epoch's end is wanted
    # (train.keep_epoch_checkpoints), or where the processes must agree on when to write
    # (several processes: their clocks would not)
    checkpoint_seconds = cfg.train.checkpoint_every_seconds
    if cfg.train.keep_epoch_checkpoints or jax.process_count() > 1:
        checkpoint_seconds = 0.0

    def on_checkpoint(state: TrainState | None, why: str):
        if saver is None:
            return None
        with clock("checkpoint"):
            if state is None:  # the newest complete one
                return saver.wait()
            return saver.save(state, meta_of(state), wait=why not in ("epoch", "steps", "time"))

    def on_log(state: TrainState, m: dict) -> None:
        record("log", state, {**m, "words_total": meta_of(state)["words_total"]})

    def on_epoch_end(state: TrainState, m: dict) -> None:
        rec = {**m, "words_total": meta_of(state)["words_total"]}
        if evaluate_each_epoch or m["epoch"] == cfg.train.epochs:  # the last: the scores
            t = time.perf_counter()
            with clock("eval"):
                rec.update(evaluate_vectors(cfg, vectors_of(run, state)))
            rec["eval_time_s"] = time.perf_counter() - t
        scores.update({k: v for k, v in rec.items() if k.startswith(("analogy", "wordsim"))})
        rec = record("epoch", state, rec)
        if progress:
            shown = {k: sig(v, 4) for k, v in rec.items() if k != "time"}
            print(json.dumps(shown), file=sys.stderr, flush=True)

    hooks = Hooks(on_log=on_log, on_epoch_end=on_epoch_end, checkpoint=on_checkpoint, progress=bar)
    try:
        with clock("train"):
            state = fit(
                run.state,
                lambda e: sharding.local_batches(cfg, _batches(bcfg, run.vocab, run.encoded, e)),
                run.tables,
                run.spec,
                epochs=cfg.train.epochs,
                steps_per_call=examples.source(cfg).per_call(cfg),
                checkpoint_every_steps=cfg.train.checkpoint_every_steps,
                checkpoint_every_seconds=checkpoint_seconds,
                log_every_steps=cfg.train.log_every_steps,
                hooks=hooks,
                step_fn=step_fn,
            )
    except BaseException:
        if saver is not None:
            saver.wait(raise_errors=False)
        raise
    finally:
        bar.close()
    try:  # whatever stops the run now, the last checkpoint is complete before it ends
        state, vectors, scores = _finish(
            cfg, run, plan, state, scores, out if primary else None, clock
        )
    except BaseException:
        if saver is not None:
            saver.wait(raise_errors=False)
        raise
    if saver is not None:
        with clock("checkpoint"):  # the last epoch's, written during evaluation and writing
            saver.wait()
    timing = clock.report()
    words = corpus_words * int(state.epoch) + int(state.words)
    record("end", state, {"step": int(state.step), "words_total": words, **scores, **timing})
    record.close()
    return Result(state, vectors, scores, out, timing, record.history)


def _finish(cfg, run, plan, state, scores, out, clock) -> tuple[TrainState, WordVectors, dict]:
    """The final state (unpadded, whole), the trained vectors, their scores (evaluated
    unless the last epoch did it) and, with ``out``, the files vectors.bin, vectors.txt
    and scores.json."""
    if plan is not None:
        state = plan.logical(state)  # unpadded, whole, on the default device
    vectors = vectors_of(run, state)
    if not scores:  # (an evaluation that is switched off gives none)
        with clock("eval"):
            scores = evaluate_vectors(cfg, vectors)
    if out is not None:
        # (a thread writing the files while the evaluation runs saves nothing, also with
        # the formatting in numpy (sgjax.textfloat): the last epoch's checkpoint is being
        # written then too; 1.07-1.18 s against 0.99-1.15 s in alternating runs)
        with clock("write"):
            try:
                write_word2vec(vectors, out / "vectors.bin", binary=True)
                write_word2vec(vectors, out / "vectors.txt", binary=False)
                checkpoint.write_text_atomic(out / "scores.json", json.dumps(scores, indent=1))
            except OSError as e:  # a full disk: the last checkpoint still holds the vectors
                hint = f"the trained state is in {out}/checkpoints; `sgjax export --run {out}`"
                raise OSError(
                    e.errno, f"{e.strerror or e} ({hint} writes it)", e.filename
                ) from None
    return state, vectors, scores


def finite_or_none(x: float) -> float | None:
    return x if isinstance(x, float) and math.isfinite(x) else None
