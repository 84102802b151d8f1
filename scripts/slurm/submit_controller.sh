#!/usr/bin/env bash
# The workflow's controller (the Snakemake process that submits and watches the SLURM jobs) as a small,
# long, requeueable SLURM job of its own, so that a weeks-long run outlives the login session, a crash
# of the controller, its node and its time limit (docs/controller.md says what happens in each case).
#
#   scripts/slurm/submit_controller.sh [--profile DIR] [--time D-HH:MM:SS] [--partition P] [--account A]
#       [--cpus N] [--mem SIZE] [--requeue-before SECONDS] [--max-failures N] [--poll SECONDS] [--dry-run]
#       -- SNAKEMAKE_ARGS...
#
# Run it in the workflow's folder, on the login node (it has the network). It stages the evaluation
# weights (palette weights fetch), runs here the workflow's local jobs that no compute job precedes (the
# downloads, stage_weights: rules the workflow declares `localrules`, found in the workflow itself), then
# submits itself as the controller job. In that job, on every (re)start: cancel the jobs of an earlier
# attempt that never started, wait for its running ones to end (a relaunched Snakemake does not re-attach
# to them and would submit them again), snakemake --unlock, snakemake again. SIGUSR1, --requeue-before
# seconds before the time limit, makes it requeue itself. It stops when --max-failures attempts in a row
# fail the same way without finishing a job, saying why.
set -uo pipefail

STATE_ROOT=.snakemake/palette-controller   # per controller job: its log, attempts and their outcomes
CONTROLLER_NAME="palette-controller"        # the controller job's name
JOB_PREFIX="palette-ctl"                    # workflow jobs are named palette-ctl<controller job id>_<run uuid>

die() { echo "submit_controller: $*" >&2; exit 2; }
note() { echo "[$(date '+%F %T')] controller: $*"; }

usage() {
    sed -n '6,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,3\}//'
    exit 2
}

time_seconds() {  # a SLURM --time value in seconds; nothing for a malformed one
    local value=$1 days=0 h=0 m=0 s=0
    if [[ $value =~ ^([0-9]+)-([0-9]+)(:([0-9]+))?(:([0-9]+))?$ ]]; then
        days=${BASH_REMATCH[1]} h=${BASH_REMATCH[2]} m=${BASH_REMATCH[4]:-0} s=${BASH_REMATCH[6]:-0}
    elif [[ $value =~ ^([0-9]+):([0-9]+):([0-9]+)$ ]]; then
        h=${BASH_REMATCH[1]} m=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
    elif [[ $value =~ ^([0-9]+)(:([0-9]+))?$ ]]; then
        m=${BASH_REMATCH[1]} s=${BASH_REMATCH[3]:-0}
    else
        return
    fi
    echo $(( ((10#$days * 24 + 10#$h) * 60 + 10#$m) * 60 + 10#$s ))
}

active_controllers() {  # ids of this user's controller jobs for this folder still in the queue
    squeue -h -u "$(id -un)" -n "$CONTROLLER_NAME" -o '%i|%Z' | awk -F'|' -v dir="$PWD" '$2 == dir {print $1}'
}

rule_kinds() {  # "local NAME" / "remote NAME" for each rule that runs code, read from the workflow itself
    # `snakemake --list-rules` does not say which rules are local; this is it, with Workflow._localrules.
    "$python" - "$@" <<'PY'
import sys

import snakemake.cli
from snakemake.workflow import Workflow


def print_rule_kinds(self, only_targets=False):
    for rule in sorted(self.rules, key=lambda rule: rule.name):
        if not rule.norun:
            print("local" if rule.name in self._localrules else "remote", rule.name)


Workflow.list_rules = print_rule_kinds
sys.exit(snakemake.cli.main([*sys.argv[1:], "--list-rules"]))
PY
}

submit() {
    local profile=profiles/slurm time=2-00:00:00 partition="" account="" cpus=1 mem=4G
    local requeue_before=600 max_failures=3 poll=60 dry_run=""
    while [ $# -gt 0 ]; do
        case $1 in
            --profile|--time|--partition|--account|--cpus|--mem|--requeue-before|--max-failures|--poll)
                [ $# -ge 2 ] || die "$1 needs a value"
                case $1 in
                    --profile) profile=$2 ;; --time) time=$2 ;; --partition) partition=$2 ;;
                    --account) account=$2 ;; --cpus) cpus=$2 ;; --mem) mem=$2 ;;
                    --requeue-before) requeue_before=$2 ;; --max-failures) max_failures=$2 ;; --poll) poll=$2 ;;
                esac
                shift 2 ;;
            --dry-run) dry_run=1; shift ;;
            --) shift; break ;;
            -h|--help) usage ;;
            *) die "unknown option $1 (Snakemake's arguments go after --)" ;;
        esac
    done
    local args=("$@")
    [ ${#args[@]} -gt 0 ] || die "no Snakemake arguments after -- (at least --configfile FILE)"
    [ -f Snakefile ] || die "no Snakefile in $PWD: run this in the workflow's folder"
    [ -f "$profile/config.yaml" ] || die "--profile $profile: no $profile/config.yaml"
    local limit
    limit=$(time_seconds "$time")
    [ -n "$limit" ] || die "--time $time: not a SLURM time (D-HH:MM:SS, HH:MM:SS or minutes)"
    local number
    for number in "cpus=$cpus" "requeue-before=$requeue_before" "max-failures=$max_failures" "poll=$poll"; do
        [[ ${number#*=} =~ ^[1-9][0-9]*$ ]] || die "--${number%%=*} ${number#*=}: not a positive whole number"
    done
    (( requeue_before < limit )) || die "--requeue-before $requeue_before: not shorter than --time $time"
    [ -n "$dry_run" ] || command -v sbatch >/dev/null || die "no sbatch here: run this on the cluster's login node"

    # The same Snakemake (and its Python) in the job: sbatch passes this environment on (--export=ALL).
    local snakemake=${PALETTE_SNAKEMAKE:-}
    if [ -z "$snakemake" ]; then
        snakemake=$PWD/.venv/bin/snakemake
        [ -x "$snakemake" ] || snakemake=$(command -v snakemake)
    fi
    [ -x "$snakemake" ] || die "no snakemake found (.venv/bin/snakemake, PATH or \$PALETTE_SNAKEMAKE)"
    python=$(dirname "$snakemake")/python
    [ -x "$python" ] || python=$(command -v python3)
    local palette
    palette=$(dirname "$snakemake")/palette
    [ -x "$palette" ] || palette=$(command -v palette) || die "no palette command next to $snakemake or on PATH"

    local sbatch_options=(--job-name="$CONTROLLER_NAME" --chdir="$PWD" --time="$time" --cpus-per-task="$cpus"
                          --mem="$mem" --requeue --signal="B:USR1@$requeue_before" --open-mode=append
                          --output="$PWD/$STATE_ROOT/%j.log")
    [ -n "$partition" ] && sbatch_options+=(--partition="$partition")
    [ -n "$account" ] && sbatch_options+=(--account="$account")
    local snakemake_run=("$snakemake" "${args[@]}" --workflow-profile "$profile")
    if [ -n "$dry_run" ]; then
        echo "submit_controller: dry run: nothing is staged, run or submitted"
        snakemake_run+=(--dry-run)
    else
        # Before anything slow: would SLURM take this job at all (partition, account, time limit)?
        local verdict running
        verdict=$(sbatch --test-only "${sbatch_options[@]}" --wrap=true 2>&1) ||
            die "SLURM refuses the controller job: $verdict"
        running=$(active_controllers | tr '\n' ' ')
        [ -z "$running" ] ||
            die "controller job(s) ${running% } already run this folder's workflow (scancel them first)"
        echo "submit_controller: staging the evaluation weights (palette weights fetch)"
        "$palette" weights fetch || die "palette weights fetch failed (exit $?)"
    fi

    local kinds
    kinds=$(rule_kinds "${args[@]}" --workflow-profile "$profile") || die "could not read the workflow's rules"
    local remote_rules
    mapfile -t remote_rules < <(awk '$1 == "remote" {print $2}' <<< "$kinds")
    [ ${#remote_rules[@]} -gt 0 ] || die "the workflow has no rule for compute nodes: nothing to submit"
    echo "submit_controller: local rules: $(awk '$1 == "local" {printf "%s ", $2}' <<< "$kinds")"
    echo "submit_controller: running here the local jobs no compute job precedes (the network's)"
    # --omit-from every rule that runs on a compute node: what remains is the local jobs upstream of all of
    # them (--until would make every local rule without wildcards a target, even ones the run does not need).
    "${snakemake_run[@]}" --omit-from "${remote_rules[@]}" ||
        die "the local jobs failed (exit $?); if a crashed controller left the folder locked and no" \
            "Snakemake runs here, run: $snakemake ${args[*]} --workflow-profile $profile --unlock"

    local submission=(sbatch --parsable "${sbatch_options[@]}" "$(realpath "${BASH_SOURCE[0]}")" --in-job
                      "$snakemake" "$profile" "$max_failures" "$poll" "$requeue_before" -- "${args[@]}")
    if [ -n "$dry_run" ]; then
        echo "submit_controller: would submit: ${submission[*]}"
        return
    fi
    mkdir -p "$STATE_ROOT"
    local job
    job=$("${submission[@]}") || die "sbatch failed: $job"
    job=${job%%;*}
    echo "submit_controller: controller job $job submitted; its log: $STATE_ROOT/$job.log"
    echo "submit_controller: its workflow jobs are named $JOB_PREFIX${job}_<run id>; to stop everything:"
    echo "  scancel $job; squeue -h -u \$USER -o '%i %j' |"
    echo "    awk '\$2 ~ /^$JOB_PREFIX${job}_/ {print \$1}' | xargs -r scancel"
}

# ------------------------------------------------------------------------------------------- in the job
# Snakemake writes straight into the job's log (no pipe: a reader killed by SLURM's SIGTERM would break
# Snakemake's output, and Snakemake cancels every job it watches when it dies of an exception). Each
# attempt's part of the log starts at the byte offset recorded in attempt-N.offset.
attempt_text() {
    [ -f "$state/attempt-$1.offset" ] || return 0
    tail -c "+$(( $(cat "$state/attempt-$1.offset") + 1 ))" "$job_log"
}

finished_jobs() { attempt_text "$1" | grep -c '^Finished jobid'; true; }

record() {  # the outcome of attempt N: KIND<TAB>JOBS FINISHED<TAB>WHY, once
    local file=$state/attempt-$1.outcome
    [ -s "$file" ] || printf '%s\t%s\t%s\n' "$2" "$(finished_jobs "$1")" "$3" > "$file"
}

failure_signature() {  # how attempt N failed: exit code, first error line and the next, numbers masked
    local rc=$2 line
    line=$(attempt_text "$1" | grep -m1 -A1 -E 'Error|Exception' | sed -E 's/[0-9]+/#/g; s/^[[:space:]]+//' |
           paste -sd ' ' | cut -c1-300)
    local how="exit $rc"
    (( rc > 128 )) && how+=" (signal $((rc - 128)))"
    echo "$how${line:+: $line}"
}

same_failures_in_a_row() {  # how many attempts up to N failed like attempt N, finishing no job
    local n=$1 count=0 first="" kind finished why
    while (( n >= 1 )) && [ -s "$state/attempt-$n.outcome" ]; do
        IFS=$'\t' read -r kind finished why < "$state/attempt-$n.outcome"
        if [[ $kind != failed && $kind != lost ]] || [ "$finished" != 0 ]; then break; fi
        [ -n "$first" ] || first="$kind $why"
        [ "$kind $why" = "$first" ] || break
        count=$((count + 1)) n=$((n - 1))
    done
    echo "$count"
}

wait_for_earlier_jobs() {  # until no workflow job of an earlier attempt (or controller) for this folder is left
    local said="" lines pending running id name job_state dir
    while true; do
        if ! lines=$(squeue -h -u "$(id -un)" -o '%i|%j|%T|%Z' 2>&1); then
            note "squeue failed ($lines); asking again in ${poll}s"; sleep "$poll"; continue
        fi
        pending=() running=()
        while IFS='|' read -r id name job_state dir; do
            [[ $name == "$JOB_PREFIX"* && $dir == "$PWD" ]] || continue
            if [ "$job_state" = PENDING ]; then pending+=("$id"); else running+=("$id:$job_state"); fi
        done <<< "$lines"
        if [ ${#pending[@]} -gt 0 ]; then
            # never started: nothing is lost, and the relaunch submits them again
            note "cancelling ${#pending[@]} job(s) of an earlier attempt that never started: ${pending[*]}"
            scancel "${pending[@]}" || note "scancel failed; they are looked at again in ${poll}s"
        fi
        if [ ${#running[@]} -eq 0 ] && [ ${#pending[@]} -eq 0 ]; then return; fi
        if [ ${#running[@]} -gt 0 ] && [ "$said" != "${running[*]}" ]; then
            note "waiting for ${#running[@]} running job(s) of an earlier attempt to end: ${running[*]}"
            said="${running[*]}"
        fi
        sleep "$poll"
    done
}

# SLURM sends USR1 to this shell only (B:); bash runs the trap once the foreground command returns (a wait
# at once, a squeue or a --poll sleep at worst), well within --requeue-before.
on_time_limit() {
    note "time limit in ${requeue_before}s: requeueing this controller (its running jobs go on)"
    record "$attempt" requeued "time limit near"
    scontrol requeue "$SLURM_JOB_ID" || note "scontrol requeue $SLURM_JOB_ID failed: this job ends at its time limit"
}

on_terminate() {
    note "SIGTERM (requeue, preemption or scancel): stopping; the workflow's running jobs go on"
    record "$attempt" terminated "SIGTERM"
}

run_in_job() {
    local snakemake=$1 profile=$2 max_failures=$3
    poll=$4 requeue_before=$5
    shift 6  # the five values and "--"
    local args=("$@")
    [ -n "${SLURM_JOB_ID:-}" ] || die "--in-job runs inside the controller job (no SLURM_JOB_ID)"
    state=$STATE_ROOT/$SLURM_JOB_ID job_log=$PWD/$STATE_ROOT/$SLURM_JOB_ID.log attempt=0
    mkdir -p "$state"
    exec >> "$job_log" 2>&1  # (under sbatch it already is; the same file, appended)
    trap on_time_limit USR1
    trap on_terminate TERM
    note "job $SLURM_JOB_ID on $(hostname -s), start ${SLURM_RESTART_COUNT:-0} after requeues, in $PWD"
    local rc pid failures
    attempt=$(find "$state" -maxdepth 1 -name 'attempt-*.offset' | wc -l)
    if (( attempt > 0 )); then
        record "$attempt" lost "ended without a word (node failure, out of memory, or SIGKILL)"
    fi
    while true; do
        failures=$(same_failures_in_a_row "$attempt")
        if (( failures >= max_failures )); then
            note "stopped: $failures attempts in a row failed the same way, finishing no job:" \
                 "$(cut -f3 "$state/attempt-$attempt.outcome"). Fix the cause (this log says more), then submit again."
            exit 1
        fi
        attempt=$((attempt + 1))
        stat -c %s "$job_log" > "$state/attempt-$attempt.offset"
        note "attempt $attempt: earlier jobs first"
        wait_for_earlier_jobs
        note "attempt $attempt: snakemake --unlock, then snakemake"
        # The plugin drops the SLURM_* variables of this job before it submits (they would leak into the jobs).
        if "$snakemake" "${args[@]}" --workflow-profile "$profile" --unlock; then
            "$snakemake" "${args[@]}" --workflow-profile "$profile" --rerun-incomplete \
                --slurm-jobname-prefix "$JOB_PREFIX$SLURM_JOB_ID" &
            pid=$!
            echo "$pid" > "$state/snakemake.pid"
            # wait returns early for each trapped signal; the last wait gives the process's own exit code
            while wait "$pid"; kill -0 "$pid" 2>/dev/null; do :; done
            wait "$pid"; rc=$?
        else
            rc=$?
            note "snakemake --unlock failed (exit $rc)"
        fi
        if [ -s "$state/attempt-$attempt.outcome" ]; then  # requeued or terminated: SLURM ends this job now
            note "attempt $attempt: snakemake ended (exit $rc) after $(cut -f3 "$state/attempt-$attempt.outcome")"
            exit 143
        fi
        if [ "$rc" = 0 ]; then
            record "$attempt" "done" "workflow complete"
            note "attempt $attempt: the workflow is complete"
            exit 0
        fi
        record "$attempt" failed "$(failure_signature "$attempt" "$rc")"
        note "attempt $attempt ended: $(cut -f3 "$state/attempt-$attempt.outcome"); relaunching in ${poll}s"
        sleep "$poll"
    done
}

if [ "${1:-}" = --in-job ]; then
    shift
    run_in_job "$@"
else
    submit "$@"
fi
