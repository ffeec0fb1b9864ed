"""sgjax.cli.run: the command's exit without module teardown loses nothing."""

import os
import subprocess
import sys
import textwrap

import pytest

#: buffered output, as a user's shell gives it (the test environment may set it unbuffered)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _python(code: str, **kw) -> subprocess.CompletedProcess:
    """``python -c code`` with buffered output (``kw``: subprocess.run's, default captured)."""
    kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "timeout": 120, **kw}
    return subprocess.run([sys.executable, "-c", code], text=True, env=ENV, **kw)


def _cli_code(*args: str) -> str:
    """The ``sgjax`` console script's entry point (``sgjax.cli:run``) with ``args``."""
    return f"import sys; from sgjax.cli import run; sys.argv = ['sgjax', *{list(args)!r}]; run()"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return _python(_cli_code(*args))


def test_piped_output_and_exit_codes():
    ok = _cli("config", "--set", "model.dim=7")
    assert ok.returncode == 0, ok.stderr
    assert "  dim: 7\n" in ok.stdout and ok.stdout.endswith("distributed: false\n")
    bad = _cli("config", "--set", "nope=1")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "unknown key 'nope'" in bad.stderr


def test_threads_and_atexit_handlers_finish_first(tmp_path):
    """A non-daemon thread still running when main returns, an atexit handler and
    unflushed output all complete before the process ends with main's code."""
    script = textwrap.dedent(
        f"""
        import atexit, pathlib, sys, threading, time
        import sgjax.cli as cli

        def late():
            time.sleep(0.5)
            pathlib.Path({str(tmp_path / "thread")!r}).write_text("done")

        def main():
            threading.Thread(target=late).start()
            atexit.register(lambda: pathlib.Path({str(tmp_path / "atexit")!r}).touch())
            sys.stdout.write("unflushed")
            return 3

        cli.main = main
        cli.run()
        """
    )
    p = _python(script, timeout=60)
    assert p.returncode == 3 and p.stdout == "unflushed", p.stderr
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").exists()


def test_a_thread_pool_left_open_does_not_hang_the_exit():
    """Thread pools are told to stop as at a normal exit (an idle worker is never joined
    otherwise: the command would hang)."""
    script = textwrap.dedent(
        """
        import concurrent.futures as cf
        import sgjax.cli as cli

        POOL = None

        def main():
            global POOL
            POOL = cf.ThreadPoolExecutor(2)
            print(POOL.submit(lambda: 42).result())
            return 5

        cli.main = main
        cli.run()
        """
    )
    p = _python(script, timeout=60)
    assert p.returncode == 5 and p.stdout == "42\n", p.stderr


def test_output_that_cannot_be_written_is_an_error():
    """A full disk at the final flush: one line on stderr and exit status 2, not a silent
    success (a closed pipe, as `| head` leaves it, is not an error)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    code = _cli_code("config")
    with open("/dev/full", "w") as full:
        p = _python(code, stdout=full)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "No space left on device" in p.stderr
    piped = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    piped.stdout.close()  # the reader is gone before the output is flushed
    _, err = piped.communicate(timeout=120)
    assert piped.returncode == 0 and err == b"", err
