"""The shared pieces of the command-line entry points: leaving a torch CLI without the interpreter's teardown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True)


def test_leaving_without_teardown_runs_the_atexit_handlers_flushes_and_keeps_the_code(tmp_path):
    marker = tmp_path / "atexit.txt"
    done = run_python(
        f"""
        import atexit, logging, pathlib, sys
        from geocontrast.cli import exit_without_teardown
        atexit.register(pathlib.Path({str(marker)!r}).write_text, "handler ran")
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
        sys.stdout.write("buffered output")
        logging.getLogger().warning("a warning")
        exit_without_teardown(3)
        print("never reached")
        """,
        tmp_path,
    )
    assert done.returncode == 3
    assert done.stdout == "buffered output"
    assert done.stderr.strip() == "a warning"
    assert marker.read_text() == "handler ran"


def test_leaving_without_teardown_after_a_main_that_returned_none_is_success(tmp_path):
    done = run_python("from geocontrast.cli import exit_without_teardown\nexit_without_teardown(None)", tmp_path)
    assert done.returncode == 0, done.stderr


def test_leaving_without_teardown_skips_the_finalisers_of_live_objects(tmp_path):
    """What it saves: objects still alive at exit are not torn down (here a finaliser that would print)."""
    code = """
        import sys
        from geocontrast.cli import exit_without_teardown
        class Slow:
            def __del__(self):
                print("torn down")
        kept = Slow()
        {end}
        """
    torn = run_python(code.format(end="sys.exit(0)"), tmp_path)
    fast = run_python(code.format(end="exit_without_teardown(0)"), tmp_path)
    assert torn.stdout.strip() == "torn down"
    assert fast.stdout == "" and fast.returncode == 0


def test_every_cli_of_the_package_ends_without_teardown():
    """A CLI that leaves through sys.exit pays the interpreter's teardown (0.1-2 s of CPU) after its work is done."""
    package = Path(__file__).resolve().parent.parent / "src" / "geocontrast"
    clis = [path for path in package.rglob("*.py") if 'if __name__ == "__main__":' in path.read_text()]
    assert len(clis) > 30
    ending = 'if __name__ == "__main__":\n    exit_without_teardown(main())\n'
    assert [str(path.relative_to(package)) for path in clis if not path.read_text().endswith(ending)] == []
