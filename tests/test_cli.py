"""Every command-line entry point answers --help without loading the heavy stack: argparse first, the libraries
after the arguments are parsed (a job that fails on a bad argument, or a user asking for help, pays no torch)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

SOURCE = REPO / "src"
HEAVY = ("torch", "numba", "matplotlib", "sklearn", "scipy")
"""Packages that take seconds to import on a busy 2-core machine."""


def cli_modules() -> list[str]:
    """Every module of the package that runs as ``python -m``: a __main__.py, or a module with a __main__ guard."""
    modules = []
    for path in sorted((SOURCE / "geocontrast").rglob("*.py")):
        dotted = ".".join(path.relative_to(SOURCE).with_suffix("").parts)
        if path.name == "__main__.py":
            modules.append(dotted.removesuffix(".__main__"))
        elif 'if __name__ == "__main__":' in path.read_text():
            modules.append(dotted)
    return modules


HELP_PROBE = """
import json, runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "heavy": sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))}))
"""


@pytest.mark.parametrize("module", cli_modules())
def test_help_answers_without_the_heavy_stack(module):
    probe = f"HEAVY = {HEAVY!r}\n{HELP_PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", probe, module], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["code"] == 0 and "usage:" in result.stdout
    assert not outcome["heavy"], outcome["heavy"]


def test_the_cli_list_is_complete():
    found = cli_modules()
    assert {"geocontrast.train", "geocontrast.evaluate", "geocontrast.evaluate.frozen"} <= set(found)
    sources = {"geocontrast.data.inat_export", "geocontrast.data.dwca", "geocontrast.data.folder"}
    assert sources | {"geocontrast.data.manifest", "geocontrast.data.splits"} <= set(found)
