"""The workflow on a real SLURM: scripts/slurm/local_cluster.sh's single-node cluster (`make test-slurm`).

- the CI DAG through profiles/slurm-local, with no overrides, rc 0;
- the shipped profiles/slurm stops before submitting, naming the rule and key the cluster cannot meet;
- `scontrol requeue` of a running training job: it comes back, resumes from its checkpoint, and
  the final weights equal an uninterrupted run's bit for bit (CPU);
- a training job whose SLURM time limit is shorter than its training: it saves before the limit,
  exits 75, is resubmitted and resumes until done, again bit for bit;
- the ImageNet preset's whole DAG in miniature (scripts/slurm/rehearse.sh, docs/rehearsal.md).

These run only under `make test-slurm` (PALETTE_TEST_SLURM=1); asked for there, a SLURM that does not
answer is a failure with its reason, never a skip. The profile comparison needs no cluster and always runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import unavailable

REPO = Path(__file__).resolve().parents[1]
LOCAL_KEYS = {  # what profiles/slurm-local may change (its header documents each)
    "slurm-status-command", "slurm-init-seconds-before-status-checks", "latency-wait", "jobs",
    "default-resources/slurm_partition", "default-resources/mem_mb", "default-resources/runtime",
}
LOCAL_RESOURCE_KEYS = {"gpu", "mem_mb", "runtime", "cpus_per_task", "cpus_per_gpu", "slurm_extra"}


def flatten(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_the_local_profile_differs_from_the_shipped_one_only_in_documented_keys():
    shipped = flatten(yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text()))
    local = flatten(yaml.safe_load((REPO / "profiles" / "slurm-local" / "config.yaml").read_text()))
    for key in set(shipped) | set(local):
        if shipped.get(key) == local.get(key):
            continue
        section, _, name = key.rpartition("/")
        allowed = (key in LOCAL_KEYS or section.startswith("set-threads")
                   or (section.startswith("set-resources/") and name in LOCAL_RESOURCE_KEYS))
        assert allowed, f"profiles/slurm-local changes {key}: {shipped.get(key)!r} -> {local.get(key)!r}"


def slurm_answers() -> str | None:
    """Why SLURM cannot run these tests here, or None."""
    if shutil.which("sinfo") is None:
        return "no SLURM installed (scripts/slurm/local_cluster.sh installs one as root)"
    try:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 60 s"
    if state.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in state.stdout.split()):
        return f"SLURM does not answer or has no usable node: {(state.stderr or state.stdout).strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def slurm():
    """The SLURM tests run under `make test-slurm` (PALETTE_TEST_SLURM=1); asked for there (or
    under CI), a SLURM that does not answer fails them with the reason instead of skipping."""
    if os.environ.get("PALETTE_TEST_SLURM") != "1":
        pytest.skip("SLURM tests run under `make test-slurm` (PALETTE_TEST_SLURM=1)")
    reason = slurm_answers()
    if reason:
        unavailable(reason, asked=True)


needs_slurm = pytest.mark.usefixtures("slurm")


def derived_config(tmp_path: Path, **train_changes) -> Path:
    """config/test.yaml with its results and work folders in tmp_path (and, given changes, only
    the inpainting model with these training settings, trained in one `train` job: the tests
    below interrupt that job; segments are the rehearsal's)."""
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config["results_dir"], config["work_dir"] = str(tmp_path / "results"), str(tmp_path / "work")
    if train_changes:
        config["experiments"] = {"inpainting": config["experiments"]["inpainting"]}
        config["train_defaults"].update(train_changes)
        config["training"]["segment_steps"] = None
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(config: Path, *args: str, profile: str = "profiles/slurm-local") -> list[str]:
    # targets and options first: --configfile takes every word after it
    return [sys.executable, "-m", "snakemake", *args, "--workflow-profile", profile, "--configfile", str(config)]


def environment() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def run(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=timeout)
    print(f"{' '.join(command[2:])}: rc {result.returncode} in {time.monotonic() - started:.0f} s")
    return result


@needs_slurm
def test_the_shipped_profile_stops_before_submitting_and_names_the_key(tmp_path):
    result = run(snakemake(derived_config(tmp_path), profile="profiles/slurm"), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "train: gpu=8 on 1 node(s) needs 8 GPUs per node" in output and "set `gpu`" in output, output[-3000:]
    assert "mem_mb=256000" in output and "Submitted job" not in output


@needs_slurm
def test_the_ci_dag_through_the_local_profile(tmp_path):
    result = run(snakemake(derived_config(tmp_path)), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "results" / "report.html").exists()


# ----------------------------------------------------------------------------- interrupted training
TRAINING = dict(steps=360, log_every=20, checkpoint_every=40)  # about 30 s on one core here
LONG_TRAINING = dict(TRAINING, steps=1500)  # about 2 minutes: longer than one 2-minute attempt


def train_job_id(workflow: subprocess.Popen, timeout: float = 300) -> str:
    """The running train job's SLURM id. The executor's comment names the rule and its wildcards
    (rule_train_wildcards_inpainting); matching "train" anywhere would also find
    rule_prepare_split_wildcards_train, still listed as running while it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert workflow.poll() is None, workflow.stdout.read()[-3000:]
        lines = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True).stdout.split()
        for line in lines:
            job, comment, state = line.split("|")
            if comment.partition("_wildcards_")[0] == "rule_train" and state == "RUNNING":
                return job
        time.sleep(1)
    raise AssertionError("no running train job")


def final_weights(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    return {"step": state["step"], **{f"model.{k}": v for k, v in state["model"].items()},
            **{f"ema.{k}": v for k, v in state["ema"].items()}}


def assert_bitwise_equal_to_an_uninterrupted_run(tmp_path: Path, steps: int) -> None:
    work = next((tmp_path / "work" / "train").glob("inpainting-*"))
    config = yaml.safe_load((work / "workflow_config.yaml").read_text())
    config["time_budget"] = None
    (tmp_path / "uninterrupted.yaml").write_text(yaml.safe_dump(config))
    reference = tmp_path / "uninterrupted.pt"
    # in a process of its own with the job's one OpenMP thread: thread counts change CPU float sums
    result = run([sys.executable, "-m", "palette.cli", "train", "--config", str(tmp_path / "uninterrupted.yaml"),
                  "--workdir", str(tmp_path / "uninterrupted"), "--final", str(reference), "--no-lease"], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    interrupted, uninterrupted = final_weights(tmp_path / "results" / "checkpoints" / "inpainting.pt"), final_weights(reference)
    assert interrupted["step"] == uninterrupted["step"] == steps
    assert interrupted.keys() == uninterrupted.keys()
    different = [key for key in interrupted if key != "step" and not torch.equal(interrupted[key], uninterrupted[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@needs_slurm
def test_a_requeued_training_job_resumes_and_ends_bit_for_bit_equal(tmp_path):
    config = derived_config(tmp_path, **TRAINING)
    target = str(tmp_path / "results" / "checkpoints" / "inpainting.pt")
    started = time.monotonic()
    workflow = subprocess.Popen(snakemake(config, target), cwd=REPO, env=environment(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        job = train_job_id(workflow)
        deadline = time.monotonic() + 300
        while not list((tmp_path / "work" / "train").glob("inpainting-*/checkpoints/last.pt")):
            assert time.monotonic() < deadline and workflow.poll() is None, "no checkpoint before the requeue"
            time.sleep(1)
        subprocess.run(["scontrol", "requeue", job], check=True)  # SLURM starts it again 2 minutes later
        output, _ = workflow.communicate(timeout=600)
    finally:
        if workflow.poll() is None:
            workflow.kill()
    print(f"requeue test: snakemake rc {workflow.returncode} in {time.monotonic() - started:.0f} s")
    assert workflow.returncode == 0, output[-4000:]
    log = (tmp_path / "results" / "logs" / "train" / "inpainting.log").read_text()
    assert "resumed from" in log, log[-3000:]
    assert_bitwise_equal_to_an_uninterrupted_run(tmp_path, TRAINING["steps"])


@needs_slurm
def test_a_training_longer_than_its_time_limit_saves_resumes_and_ends_bit_for_bit_equal(tmp_path):
    config = derived_config(tmp_path, **LONG_TRAINING)
    target = str(tmp_path / "results" / "checkpoints" / "inpainting.pt")
    # 2 minutes per attempt: the trainer's budget is 90 s from the job's start, SLURM's warning
    # (--signal=TERM@30) comes 30 to 60 s before the limit; whichever is first saves and exits 75
    # (a rule's --set-resources replace the profile's for that rule: all of slurm-local's are repeated)
    resources = ["train:runtime=2", "train:gpu=0", "train:mem_mb=3000", "train:slurm_extra='--signal=TERM@30'"]
    result = run(snakemake(config, target, "--set-resources", *resources), timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    log = (tmp_path / "results" / "logs" / "train" / "inpainting.log").read_text()
    assert "resumed from" in log, log[-3000:]  # the last attempt's log: earlier ones are deleted per attempt
    assert_bitwise_equal_to_an_uninterrupted_run(tmp_path, LONG_TRAINING["steps"])


# ----------------------------------------------------------------------------- the rehearsal
def attempt_rows(path: Path) -> list[dict]:
    from palette.attempts import AttemptLog

    return AttemptLog(path).rows()


@needs_slurm
def test_the_imagenet_rehearsal_runs_the_presets_dag_through_slurm(tmp_path):
    """config/presets/imagenet.yaml's whole DAG in miniature (scripts/slurm/rehearse.sh): every training
    resumes at least twice, attempts cut by the time budget and by SLURM's own time-limit warning, a
    sampling shard cut and resumed; then the bits: budget-cut training equals an uninterrupted run,
    sharded samples equal unsharded ones; the report's verdicts; a second run plans nothing."""
    import json

    from palette.inference import sample_evaluation_set

    overlay = tmp_path / "where.yaml"
    overlay.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "results"), "work_dir": str(tmp_path / "work")}))
    environment_ = dict(environment(), REHEARSAL_OVERLAY=str(overlay), REHEARSAL_DATA=str(tmp_path / "data"),
                        PYTHON=sys.executable)
    started = time.monotonic()
    result = subprocess.run(["bash", "scripts/slurm/rehearse.sh", "imagenet"], cwd=REPO, env=environment_,
                            capture_output=True, text=True, timeout=1800)
    print(f"rehearsal of the ImageNet preset: rc {result.returncode} in {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    results, work = tmp_path / "results", tmp_path / "work"
    preset = yaml.safe_load((REPO / "config" / "presets" / "imagenet.yaml").read_text())

    # training: every model in three jobs (two resumes), cut by its budget and by SLURM, from the attempt logs
    for experiment in preset["experiments"]:
        folders = list((work / "train").glob(f"{experiment}-*"))
        assert len(folders) == 1, experiment
        begins = [row for row in attempt_rows(folders[0] / "attempts.tsv") if row["event"] == "begin"]
        resumed_jobs = {row["job"] for row in begins if int(row["progress"]) > 0}
        assert len(resumed_jobs) >= 2, (experiment, begins)
        assert (results / "checkpoints" / f"{experiment}.pt").is_file()
    counts = {}
    for experiment in ("uncropping", "super_resolution"):
        rows = attempt_rows(next((work / "train").glob(f"{experiment}-*")) / "attempts.tsv")
        counts[experiment] = [row for row in rows if row["event"] == "end"]
    assert len([row for row in counts["uncropping"] if row["stopped_by"] == "time budget" and row["exit"] == "75"]) >= 6
    cut_by_slurm = [row for row in counts["super_resolution"] if row["stopped_by"] == "SIGTERM" and row["exit"] == "75"]
    assert cut_by_slurm, counts["super_resolution"]  # its budget is an hour: only SLURM's time-limit warning stops it
    print(f"attempts: uncropping {len(counts['uncropping'])}, super_resolution {len(counts['super_resolution'])} "
          f"({len(cut_by_slurm)} ended by SLURM)")

    # sampling: a shard stopped by its budget resumed where it stopped
    shard_logs = sorted((work / "samples").glob("*/*/*/shard_*/attempts.tsv"))
    cut_shards = [path.parent for path in shard_logs
                  if any(row["exit"] == "75" for row in attempt_rows(path) if row["event"] == "end")]
    assert cut_shards, "no sampling shard was cut"
    shard = cut_shards[0]
    begins = [row for row in attempt_rows(shard / "attempts.tsv") if row["event"] == "begin"]
    assert len(begins) >= 2 and int(begins[-1]["progress"]) > 0

    # the bits: the budget-cut model equals one uninterrupted run ...
    uncropping = next((work / "train").glob("uncropping-*"))
    config = yaml.safe_load((uncropping / "workflow_config.yaml").read_text())
    config["time_budget"] = None
    (tmp_path / "uninterrupted.yaml").write_text(yaml.safe_dump(config))
    run([sys.executable, "-m", "palette.cli", "train", "--config", str(tmp_path / "uninterrupted.yaml"),
         "--workdir", str(tmp_path / "uninterrupted"), "--final", str(tmp_path / "uninterrupted.pt"), "--no-lease"],
        timeout=600).check_returncode()
    interrupted, uninterrupted = final_weights(results / "checkpoints" / "uncropping.pt"), final_weights(
        tmp_path / "uninterrupted.pt")
    assert interrupted["step"] == uninterrupted["step"] == config["steps"]
    assert all(torch.equal(interrupted[key], uninterrupted[key]) for key in interrupted if key != "step")
    # ... and the cut, sharded, gathered samples equal one unsharded run
    experiment, task, sampler = shard.relative_to(work / "samples").parts[:3]
    provenance = json.loads((shard / "provenance.json").read_text())
    whole = sample_evaluation_set(results / "checkpoints" / f"{experiment}.pt", results / "evaluation_sets" / task,
                                  tmp_path / "unsharded", provenance["sampler"],
                                  samples_per_input=provenance["samples_per_input"], seed=provenance["seed"],
                                  batch_size=16, device="cpu")
    gathered = results / "samples" / experiment / task / sampler
    names = sorted(str(path.relative_to(whole)) for path in whole.glob("sample_*/*.png"))
    assert names == sorted(str(path.relative_to(gathered)) for path in gathered.glob("sample_*/*.png")) and names
    assert all((whole / name).read_bytes() == (gathered / name).read_bytes() for name in names)

    # the report has its verdicts, and a second run plans nothing
    html = (results / "report.html").read_text()
    verdicts = html.split('id="reproduce"')[1].split("<h2")[0]
    assert "<table" in verdicts and "Palette has lower FID than regression" in verdicts
    again = subprocess.run(["bash", "scripts/slurm/rehearse.sh", "imagenet", "-n"], cwd=REPO, env=environment_,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
