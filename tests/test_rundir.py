"""Hardening of runs: one clear line and exit code 2 for bad input and faults, a locked run
directory, no silent overwrite, fingerprints checked on resume, checkpoint fallback,
SIGTERM, and corrupt or compressed corpora (issue 15; the shell reproductions are the
tests' docstrings, run from a clone with the venv active)."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_train import TINY, _interrupt_after, params_of, tiny_cfg, write_toy_corpus

from sgjax import checkpoint, rundir
from sgjax.cli import main as cli_main
from sgjax.experiment import train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory) -> Path:
    """A finished two-epoch run with a checkpoint at each epoch's end (copied by the tests
    that damage it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(tiny_cfg(corpus, "train.checkpoint_every_seconds=0"), out, progress=False)
    return out


def args_for(corpus: str, out, *extra: str) -> list[str]:
    args = ["train", "--quiet", "--out", str(out)]
    for o in (f"data.corpus={corpus}", *TINY, *extra):
        args += ["--set", o]
    return args


def one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "error:" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / rundir.LOCK).unlink(missing_ok=True)
    return dst


# --------------------------------------------------------------------------------------------
# The run directory.


def test_a_second_writer_is_refused_by_the_lock(corpus, tmp_path, capsys):
    """Two ``sgjax train --out D`` at once both exited 0 and left D inconsistent::

    sgjax train --config configs/smoke.yaml --set model.dim=8 --out /tmp/D --quiet &
    sgjax train --config configs/smoke.yaml --set model.dim=16 --out /tmp/D --quiet; wait
    """
    out = tmp_path / "run"
    with rundir.lock(out):  # another process's run, as far as flock is concerned
        assert cli_main(args_for(corpus, out)) == 2
        one_error_line(capsys, str(out), "another sgjax process", str(os.getpid()))
        assert sorted(p.name for p in out.iterdir()) == [rundir.LOCK]  # nothing written
        assert cli_main(["train", "--quiet", "--resume", "--out", str(out)]) == 2
        capsys.readouterr()
    assert cli_main(args_for(corpus, out)) == 0  # released: the run goes ahead


def test_truncated_vocabulary_is_refused_on_resume(finished, tmp_path, capsys):
    """A truncated vocab.txt followed by --resume exited 0, cut the tables to 103 rows and
    overwrote the finished run's vectors.bin::

    head -104 runs/quickstart/vocab.txt > v && mv v runs/quickstart/vocab.txt
    sgjax train --resume --out runs/quickstart
    """
    run = copy_run(finished, tmp_path / "run")
    before = (run / "vectors.bin").read_bytes()
    lines = (run / "vocab.txt").read_text().splitlines(keepends=True)
    (run / "vocab.txt").write_text("".join(lines[:5]))
    assert cli_main(["train", "--quiet", "--resume", "--out", str(run)]) == 2
    one_error_line(capsys, "vocab.txt changed", "step_")
    assert (run / "vectors.bin").read_bytes() == before


def test_corpus_replaced_before_resume_is_refused(tmp_path, monkeypatch, capsys):
    """A corpus replaced between Ctrl-C and --resume ran the rest at lr ~ 2.5e-6, with no
    warning::

    sgjax train --set data.corpus=a.txt --out D   # Ctrl-C
    cp b.txt a.txt; sgjax train --resume --out D
    """
    corpus = write_toy_corpus(tmp_path)
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        assert cli_main(args_for(corpus, out)) == 130
    capsys.readouterr()
    text = Path(corpus).read_text()
    Path(corpus).write_text(text[: len(text) // 2])
    cache = sorted((p.name, p.stat().st_mtime_ns) for p in (out / "cache").iterdir())
    assert cli_main(["train", "--quiet", "--resume", "--out", str(out)]) == 2
    one_error_line(capsys, f"corpus file {Path(corpus).resolve()} changed size")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (out / "cache").iterdir()) == cache
    Path(corpus).write_text(text)  # restored (a new mtime): the run continues
    assert cli_main(["train", "--quiet", "--resume", "--out", str(out)]) == 0
    assert "new mtime" in capsys.readouterr().err


def test_config_edited_before_resume_is_refused_but_the_mesh_may_change(finished, tmp_path, capsys):
    """An edited config.yaml is named key by key; the keys of rundir.MAY_CHANGE pass."""
    run = copy_run(finished, tmp_path / "run")
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("dim: 8", "dim: 9"))
    assert cli_main(["train", "--quiet", "--resume", "--out", str(run)]) == 2
    one_error_line(capsys, "model.dim (8 -> 9)")
    assert "log_every_steps: 100" in text
    (run / "config.yaml").write_text(text.replace("log_every_steps: 100", "log_every_steps: 7"))
    assert cli_main(["train", "--quiet", "--resume", "--out", str(run)]) == 0


@pytest.mark.parametrize("remove", [(), ("checkpoints",)])
def test_an_old_run_is_never_overwritten_without_overwrite(
    corpus, finished, tmp_path, capsys, remove
):
    """After ``rm -rf D/checkpoints`` a new ``sgjax train --out D`` overwrote vectors.bin,
    config.yaml and scores.json without asking; a refused rerun still rewrote D/cache/::

    rm -rf runs/quickstart/checkpoints; sgjax train --set model.dim=16
    """
    run = copy_run(finished, tmp_path / "run")
    for name in remove:
        shutil.rmtree(run / name)
    files = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert cli_main(args_for(corpus, run, "model.dim=6", "data.max_vocab_size=9")) == 2
    one_error_line(capsys, "already holds a run", "--overwrite", "vectors.bin")
    assert {p: p.read_bytes() for p in files} == files  # the cache too
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert cli_main([*args_for(corpus, run, "model.dim=6"), "--overwrite"]) == 0
    assert "dim: 6" in (run / "config.yaml").read_text()
    assert json.loads((checkpoint.latest(run) / "meta.json").read_text())["epoch"] == 2


def test_out_naming_a_file_is_one_line(corpus, tmp_path, capsys):
    """``sgjax train --out FILE`` gave a traceback."""
    f = tmp_path / "file"
    f.write_text("keep me\n")
    assert cli_main(args_for(corpus, f)) == 2
    one_error_line(capsys, str(f), "existing file")
    assert f.read_text() == "keep me\n"


def test_unwritable_output_is_one_line(corpus, capsys):
    """A read-only output file system gave a traceback (here: a path under /sys, which no
    process may create files in)."""
    out = Path("/sys/sgjax-test-run")
    try:
        out.mkdir()
    except OSError:
        pass
    else:
        out.rmdir()
        pytest.skip("/sys is writable here")
    assert cli_main(args_for(corpus, out)) == 2
    one_error_line(capsys, str(out))


def test_corrupt_newest_checkpoint_falls_back_to_the_older_one(corpus, finished, tmp_path, capsys):
    """When the newest checkpoint was corrupt, resume did not fall back to the older complete
    one. Now it says so and resumes to the uninterrupted run's vectors."""
    run = copy_run(finished, tmp_path / "run")
    newest, older = checkpoint.candidates(run)
    victim = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=os.path.getsize)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert checkpoint.verify(newest) is not None and checkpoint.verify(older) is None
    for name in ("vectors.bin", "vectors.txt"):
        (run / name).unlink()
    assert cli_main(["train", "--quiet", "--resume", "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert f"skipping checkpoint {newest}" in err and "corrupt" in err
    assert (run / "vectors.bin").read_bytes() == (finished / "vectors.bin").read_bytes()


def test_sigterm_writes_a_checkpoint_and_resumes(corpus, tmp_path, monkeypatch, capsys):
    """SIGTERM, what SLURM and Kubernetes send before killing, ended the run with no
    checkpoint and no message::

    sgjax train & sleep 20; kill -TERM %1
    """
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_after(m, 2, signal.SIGTERM)
        assert cli_main(args_for(corpus, out)) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "SIGTERM" in err and "sgjax train --resume" in err
    assert checkpoint.latest(out) is not None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    assert cli_main(["train", "--quiet", "--resume", "--out", str(out)]) == 0
    full = train(tiny_cfg(corpus), tmp_path / "full", progress=False)
    np.testing.assert_array_equal(
        params_of(full)["W"], np.asarray(checkpoint.load_run_state(out)[1]["W"])
    )


# --------------------------------------------------------------------------------------------
# Corpora: corrupt, truncated or unsupported compression.

TEXT = ("cat eats food dog sees water bird likes seeds\n" * 4000).encode()
FORMATS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def _damaged(kind: str, compress) -> bytes:
    data = compress(TEXT)
    if kind == "truncated":
        return data[: len(data) // 2]
    bad = bytearray(data)
    for i in range(len(bad) // 3, len(bad) // 3 + 8):
        bad[i] ^= 0xA5
    return bytes(bad)


@pytest.mark.parametrize("kind", ["truncated", "corrupt"])
@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_damaged_compressed_corpus_is_one_line(tmp_path, capsys, suffix, kind):
    """A truncated or corrupt .gz/.bz2/.xz corpus gave EOFError, BadGzipFile or LZMAError
    tracebacks::

    head -c 100000 corpus.txt.gz > cut.gz; sgjax train --set data.corpus=cut.gz
    """
    path = tmp_path / f"corpus.txt{suffix}"
    path.write_bytes(_damaged(kind, FORMATS[suffix]))
    assert cli_main(args_for(str(path), tmp_path / "run")) == 2
    one_error_line(capsys, str(path), "corrupt or truncated")
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_debug_shows_the_traceback(tmp_path, capsys):
    path = tmp_path / "corpus.txt.gz"
    path.write_bytes(_damaged("truncated", gzip.compress))
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        cli_main(["--debug", *args_for(str(path), tmp_path / "run")])


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_compressed_corpus_is_read_whatever_its_name(tmp_path, suffix):
    """gzip, bzip2 and xz are recognised by their magic bytes, not only by the suffix."""
    from sgjax.corpus import iter_lines

    path = tmp_path / "corpus.txt"
    path.write_bytes(FORMATS[suffix](TEXT))
    assert sum(len(x) for x in iter_lines(path)) == len(TEXT.split())


@pytest.mark.parametrize(
    "magic,name",
    [(b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"), (b"7z\xbc\xaf\x27\x1c", "7z")],
)
def test_unsupported_archive_is_one_line(tmp_path, capsys, magic, name):
    path = tmp_path / "corpus.txt"
    path.write_bytes(magic + bytes(200))
    assert cli_main(args_for(str(path), tmp_path / "run")) == 2
    one_error_line(capsys, str(path), f"a {name} archive")


def test_full_disk_while_encoding_is_one_line_and_leaves_no_partial_file(corpus, tmp_path):
    """A full disk while encoding gave a traceback and left partial files (here: a file size
    limit, which makes write() fail with EFBIG as a full disk fails with ENOSPC)."""
    big = tmp_path / "big.txt"
    big.write_text(Path(corpus).read_text() * 40)  # ~120k tokens: ~0.5 MB of ids
    out = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import resource, sys
        from sgjax.cli import main
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        sys.exit(main({args_for(str(big), out)!r}))
        """
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "File too large" in err, err
    assert str(out / "cache") in err
    assert not [f for f in (out / "cache").iterdir() if "tmp" in f.name]


def test_full_disk_while_writing_the_vectors_keeps_the_checkpoint(tmp_path):
    """A full disk while writing vectors.txt gave a traceback and left vectors.txt.tmp.
    Now: one line naming the file and how to get the vectors once there is room."""
    rng = np.random.default_rng(1)
    words = np.array([f"w{i}" for i in range(3000)])
    # a wide vocabulary: vectors.txt (~2.7 MB) is the only file over the 2 MB limit (the
    # checkpoint's tables, uncompressed, take one ~1.6 MB file of orbax's when it packs them)
    wide = tmp_path / "wide.txt"
    wide.write_text("\n".join(" ".join(rng.choice(words, 10)) for _ in range(1500)) + "\n")
    out = tmp_path / "run"
    args = args_for(str(wide), out, "model.dim=64", "train.epochs=1")
    script = textwrap.dedent(
        f"""
        import resource, sys
        from sgjax.cli import main
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))
        sys.exit(main({args!r}))
        """
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "File too large" in err, err
    assert str(out / "vectors.txt") in err and "sgjax export" in err
    assert not [f.name for f in out.iterdir() if f.name.endswith(".tmp")]
    assert cli_main(["export", "--run", str(out), "--format", "text"]) == 0


def test_sigterm_while_encoding_leaves_no_partial_file(corpus, tmp_path, monkeypatch, capsys):
    """SIGTERM before training (here: while the corpus is encoded into the cache) stops with
    one line and exit code 143, and the cache holds no partial file."""
    import sgjax.encode as encode

    real = encode._encode_chunk

    def encode_then_terminate(*a, **k):
        out = real(*a, **k)
        os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(encode, "_encode_chunk", encode_then_terminate)
    out = tmp_path / "run"
    assert cli_main(args_for(corpus, out)) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip() == "sgjax train: stopped by SIGTERM"
    assert list((out / "cache").iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["gradcheck", "--dim", "abc"], "argument --dim: invalid int value"),
        (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_arguments_are_one_line(capsys, argv, needle):
    """argparse's own errors were two lines (usage, then the error)."""
    with pytest.raises(SystemExit) as e:
        cli_main(argv)
    assert e.value.code == 2
    one_error_line(capsys, needle, "--help")


def test_config_that_is_not_utf8_names_the_file(tmp_path, capsys):
    """A config file of invalid UTF-8 gave "'utf-8' codec can't decode ..." without the
    file's name."""
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00model: {}\n")
    assert cli_main(["train", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    one_error_line(capsys, str(bad), "not UTF-8")


def test_a_float64_run_reads_back_without_x64(tmp_path):
    """Reading a run (export, report) needs only config.yaml's model.output, not the
    training checks (float64 needs JAX's x64 mode to train, not to be read)."""
    from sgjax.config import load_config, to_yaml

    text = to_yaml(load_config(None, ["model.output=hierarchical"]))
    assert "dtype: float32" in text
    (tmp_path / "config.yaml").write_text(text.replace("dtype: float32", "dtype: float64"))
    assert checkpoint._saved_output(tmp_path / "config.yaml") == "hierarchical"


@pytest.mark.parametrize(
    "saved,now,changed",
    [
        ("train: {epochs: 2}", "train: {epochs: 2, extended: []}", []),  # a key added since
        ("train: {epochs: 2}", "train: {epochs: 2, keep_checkpoints: 3}", []),  # MAY_CHANGE
        ("data: {min_count: 5}", "data: {min_count: 5, vocab: v.txt}", ["data.vocab"]),
        ("train: {epochs: 2, extended: []}", "train: {epochs: 4, extended: [[9, 2]]}", []),
        ("train: {epochs: 2}", "train: {epochs: 4}", ["train.epochs"]),  # no continuation
        ("mesh: {data: 2}", "mesh: {data: 1}", []),
    ],
)
def test_config_changes(saved, now, changed):
    assert [c.split()[0] for c in rundir.config_changes(saved, now)] == changed


def test_a_moved_project_resumes_with_a_warning(tmp_path, monkeypatch, capsys):
    """A corpus given by a relative path was refused after the project moved."""
    (tmp_path / "a" / "data").mkdir(parents=True)
    corpus = write_toy_corpus(tmp_path / "a" / "data")
    monkeypatch.chdir(tmp_path / "a")
    assert cli_main(args_for(os.path.relpath(corpus), "runs/r")) == 0
    shutil.move(tmp_path / "a", tmp_path / "b")
    monkeypatch.chdir(tmp_path / "b")
    (Path("runs/r") / "vectors.bin").unlink()
    capsys.readouterr()
    assert cli_main(["train", "--quiet", "--resume", "--out", "runs/r"]) == 0
    assert "is now read from" in capsys.readouterr().err


def test_a_failed_start_leaves_no_run_behind(corpus, tmp_path, monkeypatch, capsys):
    """A bad evaluation file, or a missing tensorboardX, stopped the run after config.yaml
    and vocab.txt were written: neither a rerun nor --resume worked then."""
    out = tmp_path / "run"
    assert cli_main(args_for(corpus, out, f"eval.analogies={tmp_path / 'typo.txt'}")) == 2
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails: not installed
    assert cli_main(args_for(corpus, out, "train.log_to=[jsonl,tensorboard]")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "typo.txt" in err[0] and "sgjax[tensorboard]" in err[1]
    assert [p.name for p in out.iterdir() if p.name != "cache"] == [rundir.LOCK]
    assert cli_main(args_for(corpus, out)) == 0


@pytest.mark.parametrize("left", ["tensorboard", "figures", "vectors.input.npy"])
def test_other_outputs_of_a_run_count_as_a_run(tmp_path, left):
    """--overwrite left an old run's tensorboard events (mixed into the new run's), and its
    figures and exports."""
    run = tmp_path / "run"
    run.mkdir()
    (run / left).mkdir() if "." not in left else (run / left).write_text("x")
    with pytest.raises(rundir.RunDirError, match=left):
        rundir.check_fresh(run)
    rundir.check_fresh(run, overwrite=True)
    assert not (run / left).exists()


def test_export_skips_a_damaged_newest_checkpoint(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    newest, older = checkpoint.candidates(run)
    victim = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=os.path.getsize)
    victim.write_bytes(b"\0" * victim.stat().st_size)
    assert cli_main(["export", "--run", str(run), "--out", str(tmp_path / "v.bin")]) == 0
    err = capsys.readouterr().err
    assert f"skipping checkpoint {newest}" in err and f"step {older.name[5:].lstrip('0')}" in err
