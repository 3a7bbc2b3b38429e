"""The conda environments of the rules: pinned, consistent with pyproject.toml, and able to receive the package.

conda cannot be installed where these tests run, so nothing here creates an environment (see README.md)."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest
import yaml
from conftest import REPO
from packaging.requirements import Requirement
from packaging.version import Version

ENVS = sorted((REPO / "workflow" / "envs").glob("*.yaml"))
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.+-]*)$")
# conda-forge names whose PyPI distribution is named otherwise.
PYPI_NAMES = {"matplotlib-base": "matplotlib"}


def pinned_packages(env_file) -> dict[str, str]:
    """Every package an environment file names, as {name: version}; fails on any entry not pinned with ==."""
    spec = yaml.safe_load(env_file.read_text())
    entries = []
    for dependency in spec["dependencies"]:
        entries.extend(dependency["pip"] if isinstance(dependency, dict) else [dependency])
    pins = {}
    for entry in entries:
        match = PIN.match(entry)
        assert match, f"{env_file.name}: {entry!r} is not pinned as name==version"
        pins[match[1]] = match[2]
    return pins


def test_the_rules_use_the_environments_that_exist():
    used = {
        name
        for rules in (REPO / "workflow" / "rules").glob("*.smk")
        for name in re.findall(r'"\.\./envs/(\w+)\.yaml"', rules.read_text())
    }
    assert used and used == {env.stem for env in ENVS}


@pytest.mark.parametrize("env_file", ENVS, ids=lambda path: path.stem)
def test_every_package_is_pinned_within_the_bounds_of_pyproject(env_file):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bounds = {Requirement(line).name: Requirement(line).specifier for line in project["dependencies"]}
    pins = pinned_packages(env_file)
    assert Version(pins["python"]) in Requirement(f"python{project['requires-python']}").specifier
    for name, version in pins.items():
        specifier = bounds.get(PYPI_NAMES.get(name, name))
        if specifier is not None:
            assert Version(version) in specifier, f"{env_file.name}: {name}=={version} outside pyproject's {specifier}"
    assert "geocontrast" not in pins and "-e" not in env_file.read_text()  # the post-deploy script installs it


@pytest.mark.parametrize("env_file", ENVS, ids=lambda path: path.stem)
@pytest.mark.parametrize(
    ("package", "expected"),
    [
        (str(REPO), f"-m pip install --no-deps --editable {REPO}"),
        ("git+https://host/o/r@v1", "-m pip install --no-deps git+https://host/o/r@v1"),
    ],
    ids=["checkout", "hosted"],
)
def test_the_post_deploy_script_installs_the_package_it_is_given(env_file, package, expected, tmp_path):
    """The script beside each environment, with a stand-in `python` that records its arguments."""
    (tmp_path / "python").write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/called"\n')
    (tmp_path / "python").chmod(0o755)
    script = env_file.with_suffix(".post-deploy.sh")
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "GEOCONTRAST_PACKAGE": package}
    subprocess.run(["bash", str(script)], env=env, check=True)
    assert (tmp_path / "called").read_text().strip() == expected


def test_the_post_deploy_script_refuses_to_run_without_a_package(tmp_path):
    script = ENVS[0].with_suffix(".post-deploy.sh")
    result = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode != 0 and "deployment.smk" in result.stderr
