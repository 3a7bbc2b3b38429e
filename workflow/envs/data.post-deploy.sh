#!/usr/bin/env bash
# Snakemake runs this inside the environment it has just created (from a copy under .snakemake/conda/, so no path
# relative to the repository would hold). GEOCONTRAST_PACKAGE comes from workflow/rules/deployment.smk: this
# checkout (installed editable, so the rules run the code beside the Snakefile) or git+https://...@<tag> for a
# module from github(...). Dependencies come from the pinned environment file, never from pip.
set -euo pipefail
if [ -d "${GEOCONTRAST_PACKAGE:?set by workflow/rules/deployment.smk}" ]; then
    python -m pip install --no-deps --editable "$GEOCONTRAST_PACKAGE"
else
    python -m pip install --no-deps "$GEOCONTRAST_PACKAGE"
fi
