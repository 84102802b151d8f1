"""The workflow's controller as a SLURM job of its own (scripts/slurm/submit_controller.sh, docs/controller.md).

Always (no cluster needed): the dry run plans exactly the login node's jobs and a requeueable controller job;
bad options are refused in one line.
On the local SLURM (`make test-slurm`, PALETTE_TEST_SLURM=1):
- the CI DAG through the controller, whose Snakemake is killed (SIGKILL) while the training job runs and whose
  job then gets the time limit's SIGUSR1 (and requeues itself) while a job of the relaunch runs: the workflow
  ends, the controller exits 0, and no job (rule and wildcards) ran twice: the relaunch waited for the
  training job that outlived the crash;
- a controller failing the same way three times in a row stops and says why.
These run under `make test-slurm` (PALETTE_TEST_SLURM=1); asked for there, a SLURM that does not answer is a
failure with its reason, never a skip (tests/test_slurm.py's `slurm` fixture).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from test_slurm import derived_config, environment, needs_slurm, slurm  # noqa: F401 (slurm: the fixture)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm" / "submit_controller.sh"
STATE_ROOT = REPO / ".snakemake" / "palette-controller"
# Failed attempts of a job that SLURM or Snakemake's own retries may run again: genuine retries, not duplicates.
FAILED_STATES = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
ENDED_STATES = FAILED_STATES | {"COMPLETED", "CANCELLED"}


def controller_config(tmp_path: Path) -> Path:
    """The CI DAG with one experiment, one training job (not segments) long enough (about 25 s on one core)
    to be running while its controller is killed and relaunched, one sampling job per sampler (not shards):
    15 SLURM jobs; the weights staged into tmp_path."""
    path = derived_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["experiments"] = {"inpainting": config["experiments"]["inpainting"]}
    config["train_defaults"].update(steps=300, log_every=20, checkpoint_every=40)
    config.setdefault("training", {})["segment_steps"] = None
    config.setdefault("sampling", {})["shard_size"] = None
    config.setdefault("evaluation", {})["weights_dir"] = str(tmp_path / "weights")
    path.write_text(yaml.safe_dump(config))
    return path


def submit_controller(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], cwd=REPO, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------------------------------ no cluster needed
def test_the_dry_run_plans_the_login_node_jobs_and_a_requeueable_controller(tmp_path):
    result = submit_controller("--profile", "profiles/slurm-local", "--dry-run", "--time", "1-00:00:00",
                               "--requeue-before", "900", "--", "--configfile", str(controller_config(tmp_path)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    # The local rules, read from the workflow: the network's and the bookkeeping ones.
    local_rules = set(re.search(r"local rules: (.*)", output).group(1).split())
    assert {"stage_weights", "html_report"} <= local_rules and "train" not in local_rules, local_rules
    # Run on the login node: only the local jobs no compute job precedes (here the weights' staging and
    # the sampler records beside the checkpoints); never the report, which waits for the whole DAG.
    planned = output.split("running here the local jobs", 1)[1].split("would submit:", 1)[0]
    table = re.search(r"Job stats:\njob\s+count\n-+\s+-+\n(.*?)\ntotal", planned, re.S).group(1)
    assert {line.split()[0] for line in table.splitlines()} == {"stage_weights", "record_sampler"}, table
    submission = re.search(r"would submit: (.*)", output).group(1)
    for option in ("--requeue", "--signal=B:USR1@900", "--open-mode=append", "--time=1-00:00:00", "--in-job"):
        assert option in submission.split(), (option, submission)


@pytest.mark.parametrize("arguments, named", [
    (["--time", "1-xx", "--", "--configfile", "c.yaml"], "--time 1-xx"),
    (["--poll", "0", "--", "--configfile", "c.yaml"], "--poll 0"),
    (["--time", "5", "--requeue-before", "600", "--", "--configfile", "c.yaml"], "--requeue-before 600"),
    (["--profile", "profiles/none", "--", "--configfile", "c.yaml"], "profiles/none"),
    (["--", ], "no Snakemake arguments"),
    (["--configfile", "c.yaml"], "unknown option --configfile"),
])
def test_bad_options_are_refused_in_one_line(arguments, named):
    result = submit_controller(*arguments, timeout=30)
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and named in result.stderr, result.stderr


# ------------------------------------------------------------------------------------------ on the local SLURM
def squeue_jobs(prefix: str) -> list[dict]:
    """Every job named PREFIX... still known to SLURM, ended ones included (for MinJobAge, 10 minutes here)."""
    lines = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%j|%k|%T|%M"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    jobs = [dict(zip(("id", "name", "comment", "state", "time"), line.split("|"))) for line in lines]
    return sorted((job for job in jobs if job["name"].startswith(prefix)), key=lambda job: int(job["id"]))


def wait_for(condition, what: str, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def job_state(job: str) -> dict:
    shown = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", shown))


def cancel_leftovers(controller: str, prefix: str) -> None:
    """Only this test's own jobs: its controller and the jobs named after it."""
    active = [job["id"] for job in squeue_jobs(prefix) if job["state"] not in ENDED_STATES]
    if job_state(controller).get("JobState") not in ENDED_STATES:
        active.append(controller)
    if active:
        subprocess.run(["scancel", *active])


@needs_slurm
def test_the_controller_outlives_a_crash_and_a_requeue_and_runs_no_job_twice(tmp_path):
    config = controller_config(tmp_path)
    started = time.monotonic()
    submission = submit_controller("--profile", "profiles/slurm-local", "--partition", "debug", "--time", "30:00",
                                   "--mem", "1G", "--poll", "3", "--requeue-before", "120", "--",
                                   "--configfile", str(config))
    assert submission.returncode == 0, submission.stdout[-3000:] + submission.stderr[-3000:]
    controller = re.search(r"controller job (\d+) submitted", submission.stdout).group(1)
    prefix, log = f"palette-ctl{controller}_", STATE_ROOT / f"{controller}.log"
    print(f"controller job {controller} submitted in {time.monotonic() - started:.0f} s")

    def running_job(rule: str | None = None, besides: str = "") -> str | None:
        for job in squeue_jobs(prefix):
            if job["state"] == "RUNNING" and job["id"] != besides and (
                    rule is None or job["comment"].partition("_wildcards_")[0] == f"rule_{rule}"):
                return job["id"]
        return None

    try:
        # A crash: the controller's Snakemake dies (SIGKILL) while the training job runs.
        crashed_during = wait_for(lambda: running_job("train"), "running training job", timeout=240)
        os.kill(int((STATE_ROOT / controller / "snakemake.pid").read_text()), signal.SIGKILL)
        print(f"crash at {time.monotonic() - started:.0f} s, training job {crashed_during} running")
        # The time limit's warning (what --signal=B:USR1@SECONDS sends: the batch shell only) while a job of the
        # relaunch runs: the script requeues its own job, as SLURM does after a node failure or preemption.
        wait_for(lambda: "attempt 2: snakemake --unlock" in log.read_text(), "relaunch", timeout=120)
        requeued_during = wait_for(lambda: running_job(besides=crashed_during), "job of the relaunch", 240)
        subprocess.run(["scancel", "--batch", "--signal=USR1", controller], check=True)
        print(f"requeue at {time.monotonic() - started:.0f} s, job {requeued_during} running")
        # SLURM holds a requeued batch job for 2 minutes (BeginTime); this test does not wait for that.
        wait_for(lambda: job_state(controller).get("JobState") == "PENDING", "requeued controller", 120)
        subprocess.run(["scontrol", "update", f"JobId={controller}", "StartTime=now"], check=True)
        final = wait_for(lambda: (state := job_state(controller)).get("JobState") in ENDED_STATES and state,
                         "end of the controller", timeout=420, every=3)
    finally:
        cancel_leftovers(controller, prefix)
    print(f"controller test: {final.get('JobState')} {final.get('ExitCode')} in {time.monotonic() - started:.0f} s")
    text = log.read_text()
    # No job ran twice: per rule and wildcards (the executor's comment), every run before the last one failed.
    # Jobs cancelled before they started (TIME 0:00) did not run: the relaunch resubmits those on purpose.
    runs = defaultdict(list)
    for job in squeue_jobs(prefix):
        if not (job["state"] == "CANCELLED" and job["time"] == "0:00"):
            runs[job["comment"]].append(job)
    duplicates = {key: [(job["id"], job["state"]) for job in jobs] for key, jobs in runs.items()
                  if any(job["state"] not in FAILED_STATES for job in jobs[:-1])}
    assert not duplicates, duplicates
    assert final["JobState"] == "COMPLETED" and final["ExitCode"] == "0:0", text[-4000:]
    assert (tmp_path / "results" / "report.html").exists()
    # The two interruptions happened as intended, and the relaunch after the crash waited for the training.
    assert "attempt 1 ended: exit 137 (signal 9)" in text, text[-4000:]
    assert "time limit in 120s: requeueing" in text and "start 1 after requeues" in text, text[-4000:]
    assert re.search(rf"waiting for 1 running job\(s\) of an earlier attempt to end: {crashed_during}:", text)
    assert [job["state"] for job in runs["rule_train_wildcards_inpainting"]] == ["COMPLETED"]
    # ... and every job that was submitted ran and ended well (the controller's log names them all).
    jobs = squeue_jobs(prefix)
    assert set(runs) == {job["comment"] for job in jobs} and len(runs) >= 10, sorted(runs)
    assert all(jobs_of_key[-1]["state"] == "COMPLETED" for jobs_of_key in runs.values()), dict(runs)
    assert set(re.findall(r"submitted with SLURM jobid (\d+)", text)) == {job["id"] for job in jobs}


@needs_slurm
def test_a_controller_failing_the_same_way_stops_and_says_why(tmp_path):
    config = yaml.safe_load(derived_config(tmp_path).read_text())
    config["train_defaults"]["batch_size"] = "four"  # every attempt fails the same way
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    job = f"test{os.getpid()}x{time.monotonic_ns() % 100000}"  # a state folder of its own, not a real job
    try:
        result = subprocess.run(
            [str(SCRIPT), "--in-job", str(REPO / ".venv" / "bin" / "snakemake"), "profiles/slurm-local", "3", "1",
             "60", "--", "--configfile", str(tmp_path / "bad.yaml")],
            cwd=REPO, env=dict(environment(), SLURM_JOB_ID=job), capture_output=True, text=True, timeout=120)
        text = (STATE_ROOT / f"{job}.log").read_text()
    finally:
        shutil.rmtree(STATE_ROOT / job, ignore_errors=True)
        (STATE_ROOT / f"{job}.log").unlink(missing_ok=True)
    assert result.returncode == 1, text[-3000:]
    assert len(re.findall(r"attempt \d+: earlier jobs first", text)) == 3, text[-3000:]
    stop = re.search(r"controller: (stopped: .*)", text).group(1)
    assert "3 attempts in a row failed the same way" in stop and "batch_size: 'four'" in stop, stop
