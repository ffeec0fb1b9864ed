"""sgjax.cli.run: the command's exit without module teardown loses nothing."""

import os
import subprocess
import sys
import textwrap

#: buffered output, as a user's shell gives it (the test environment may set it unbuffered)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The ``sgjax`` console script's entry point (``sgjax.cli:run``) with ``args``."""
    code = f"import sys; from sgjax.cli import run; sys.argv = ['sgjax', *{list(args)!r}]; run()"
    cmd = [sys.executable, "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)


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
    p = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=ENV
    )
    assert p.returncode == 3 and p.stdout == "unflushed", p.stderr
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").exists()
