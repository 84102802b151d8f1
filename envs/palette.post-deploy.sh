#!/usr/bin/env bash
# Snakemake runs this inside the freshly created environment, from the workflow's working
# directory (the repository root): install the palette package without touching its dependencies.
set -euo pipefail
python -m pip install --no-deps --editable .
