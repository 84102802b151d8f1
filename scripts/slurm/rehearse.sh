#!/usr/bin/env bash
# The rehearsal of a paper preset on the local SLURM (docs/rehearsal.md): the preset's whole DAG,
# sizes shrunk (config/rehearsal/PRESET.yaml), on stand-in data built in the data set's real layout
# (palette.standins), through profiles/slurm-local. Needs the local cluster
# (scripts/slurm/local_cluster.sh, as root; `make rehearse` starts it).
#   scripts/slurm/rehearse.sh imagenet|places2|celebahq [SNAKEMAKE_ARGS...]
# REHEARSAL_DATA (default resources/rehearsal/PRESET) holds the stand-ins, built once;
# REHEARSAL_OVERLAY names one more config file laid over the rest (the tests move the results).
set -euo pipefail
cd "$(dirname "$0")/../.."
preset=${1:?usage: scripts/slurm/rehearse.sh imagenet|places2|celebahq [SNAKEMAKE_ARGS...]}
shift
case "$preset" in imagenet|places2|celebahq) ;; *) echo "rehearse.sh: no preset $preset" >&2; exit 2 ;; esac
python=${PYTHON:-.venv/bin/python}
data=${REHEARSAL_DATA:-resources/rehearsal/$preset}
if [ ! -f "$data/standin.yaml" ]; then
    "$python" -m palette.standins "$preset" --root "$data"
fi
configs=(config/presets/"$preset".yaml config/rehearsal/"$preset".yaml "$data"/standin.yaml)
if [ -n "${REHEARSAL_OVERLAY:-}" ]; then configs+=("$REHEARSAL_OVERLAY"); fi
started=$(date +%s)
status=0
"$python" -m snakemake "$@" --workflow-profile profiles/slurm-local --configfile "${configs[@]}" || status=$?
echo "rehearsal of $preset: snakemake exit $status after $(( $(date +%s) - started )) s"
exit "$status"
