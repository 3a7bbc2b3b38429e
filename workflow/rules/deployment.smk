# What the workflow knows about itself wherever it runs from (this checkout, a `module` pointing at a path, or
# github(...) as snakedeploy writes it): its version, and where the conda environments install the package from.
import os
import tomllib
from pathlib import Path

WORKFLOW_VERSION = tomllib.loads(Path(workflow.source_path("../../pyproject.toml")).read_text())["project"]["version"]


def package_source():
    """What pip installs as geocontrast into each conda environment (envs/*.post-deploy.sh): this checkout, as an
    editable install, when the Snakefile is on disk; else the hosted repository at the ref the module names."""
    basedir = workflow.current_basedir
    if hasattr(basedir, "repo"):  # github(...) / gitlab(...): a HostingProviderFile
        return f"git+https://{basedir.host}/{basedir.repo}@{basedir.ref}"
    return os.path.abspath(os.path.join(basedir.get_path_or_uri(secret_free=True), "..", ".."))


# The post-deploy scripts run in Snakemake's environment; a value set by the user (a wheel, an index pin) wins.
os.environ.setdefault("GEOCONTRAST_PACKAGE", package_source())
