"""The SLURM profile and its early check, without a cluster: palette/slurm.py on canned `sinfo`
text (time limits in SLURM's formats, gres with and without types, partitions, requests no node
can meet), the launcher's job end time from canned `squeue` text, and the shipped profile's shape
(every GPU rule has its partition placeholder, `gpu` counts the whole job's GPUs and a multi-GPU
job pins its nodes)."""

import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from palette.launch import slurm_seconds_left
from palette.slurm import check_request, parse_gres, parse_time_limit, partitions_from_sinfo

REPO = Path(__file__).resolve().parents[1]
# `sinfo -h -N -o '%P|%n|%c|%m|%G|%l'`: two GPU nodes, a CPU partition (the default), a debug one
SINFO = """\
gpu|g001|64|512000|gpu:h100:8(S:0-1)|2-00:00:00
gpu|g002|64|512000|gpu:h100:8(S:0-1)|2-00:00:00
cpu*|c001|32|128000|(null)|1-00:00:00
debug|c002|4|16000|gpu:2|30:00
"""


@pytest.mark.parametrize("text, minutes", [
    ("45", 45),  # MM
    ("30:00", 30), ("90:30", 90.5),  # MM:SS
    ("12:00:00", 720), ("00:00:30", 0.5), ("01:02:30", 62.5),  # HH:MM:SS
    ("1-0", 1440), ("1-12", 2160), ("0-06", 360),  # D-HH: hours after the day, not minutes
    ("1-12:30", 2190), ("2-00:45", 2925),  # D-HH:MM
    ("2-00:00:00", 2880), ("1-12:30:00", 2190), ("0-00:00:30", 0.5),  # D-HH:MM:SS
    ("infinite", None), ("INFINITE", None), ("UNLIMITED", None), ("n/a", None), ("", None),
])
def test_time_limits_in_every_slurm_format(text, minutes):
    assert parse_time_limit(text) == minutes


@pytest.mark.parametrize("text", ["abc", "12h", "1:2:3:4", "1-2:3:4:5", "-5", "1-", "1-2-3", ":5", "5:", "1.5"])
def test_time_limits_slurm_does_not_write_are_refused_with_the_value(text):
    with pytest.raises(ValueError, match=re.escape(f"SLURM time limit {text!r} is not one of MM, MM:SS")):
        parse_time_limit(text)


@pytest.mark.parametrize("text, expected", [
    ("gpu:4", (4, set())), ("gpu:4(S:0-1)", (4, set())), ("gpu:a100:4", (4, {"a100"})),
    ("gpu:a100:4(S:0-1)", (4, {"a100"})), ("gpu:h100:8(S:0-1)", (8, {"h100"})), ("(null)", (0, set())),
    ("gpu:tesla_v100-sxm2:4", (4, {"tesla_v100-sxm2"})), ("gpu:1g.10gb:7", (7, {"1g.10gb"})),  # MIG slices
    # several entries: the node's GPUs are their sum (an untyped request may take GPUs of both kinds)
    ("gpu:a100:2,gpu:h100:4(S:0)", (6, {"a100", "h100"})), ("gpu:a100:2(S:0),gpu:a100:2(S:1)", (4, {"a100"})),
    ("gpu:h100:8(S:0-1),shard:h100:16", (8, {"h100"})), ("mps:100,gpu:2", (2, set())),  # other gres not GPUs
])
def test_gres_with_and_without_types(text, expected):
    assert parse_gres(text) == expected


def test_partitions_keep_the_largest_node_and_the_default():
    partitions = partitions_from_sinfo(SINFO)
    assert set(partitions) == {"gpu", "cpu", "debug"}
    gpu = partitions["gpu"]
    assert (gpu.nodes, gpu.cpus, gpu.memory_mb, gpu.gpus, gpu.gpu_models) == (2, 64, 512000, 8, {"h100"})
    assert gpu.time_limit_minutes == 2880 and not gpu.default
    assert partitions["cpu"].default and partitions["cpu"].gpus == 0


def test_a_partition_with_a_time_limit_slurm_does_not_write_is_named():
    with pytest.raises(ValueError, match=r"sinfo, partition 'gpu': SLURM time limit 'forever' is not one of"):
        partitions_from_sinfo("gpu|g001|64|512000|gpu:8|forever\n")


def test_a_partition_limit_in_days_and_hours_admits_a_runtime_under_it():
    """`1-12` is a day and 12 hours (2160 minutes), not a day and 12 minutes: a 2000-minute job fits."""
    partitions = partitions_from_sinfo("long*|c001|32|128000|(null)|1-12\n")
    assert partitions["long"].time_limit_minutes == 2160
    assert check_request("train", {"runtime": 2000}, partitions) == []
    assert check_request("train", {"runtime": 2200}, partitions) == [
        "train: runtime=2200 min but partition 'long' allows 2160 min"]


def test_a_node_with_two_gpu_models_offers_all_its_gpus_to_an_untyped_request():
    partitions = partitions_from_sinfo("mixed*|m001|32|128000|gpu:a100:2,gpu:h100:4|infinite\n")
    assert check_request("train", {"gpu": 6, "nodes": 1}, partitions) == []
    assert check_request("train", {"gpu": 7, "nodes": 1}, partitions) == [
        "train: gpu=7 on 1 node(s) needs 7 GPUs per node but partition 'mixed' has at most 6; "
        "set `gpu` (0 for the CPU) or `slurm_partition`"]


def request_problems(**request):
    return check_request("train", dict(request), partitions_from_sinfo(SINFO))


def test_requests_the_cluster_can_meet_pass():
    assert request_problems(slurm_partition="gpu", gpu=8, nodes=1, cpus_per_gpu=8, mem_mb=256000, runtime=1440,
                            gpu_model="h100") == []
    assert request_problems(slurm_partition="gpu", gpu=16, nodes=2, mpi="srun", tasks_per_node=8, runtime=60) == []
    assert request_problems(mem_mb=8000, runtime=60, _cores=8) == []  # the default partition


@pytest.mark.parametrize("request_, fragment", [
    (dict(slurm_partition="gpu", gpu=8), "gpu=8 (the job's GPUs) without `nodes`"),
    (dict(gpu=8, nodes=1), "needs 8 GPUs per node but partition 'cpu' has at most 0"),
    (dict(slurm_partition="gpu", gpu=16, nodes=1), "needs 16 GPUs per node"),
    (dict(slurm_partition="gpu", gpu=15, nodes=2, mpi="srun"), "gpu=15 (the job's GPUs on all nodes) is not a multiple"),
    (dict(slurm_partition="gpu", gpu=16, nodes=2), "needs `mpi` and `tasks_per_node`"),
    (dict(slurm_partition="gpu", gpu=8, nodes=4, mpi="srun"), "nodes=4 but partition 'gpu' has 2 node(s)"),
    (dict(slurm_partition="gpu", gpu=8, nodes=1, gpu_model="a100"), "gpu_model='a100' but partition 'gpu' has h100"),
    (dict(slurm_partition="gpu", gpu=8, nodes=1, mem_mb=1_000_000), "mem_mb=1e+06 but partition 'gpu' has at most"),
    (dict(slurm_partition="debug", runtime=60), "runtime=60 min but partition 'debug' allows 30 min"),
    (dict(slurm_partition="gpu", gpu=8, nodes=1, cpus_per_gpu=16), "cpus_per_gpu asks for 128 CPUs"),
    (dict(_cores=64), "threads (set-threads) asks for 64 CPUs per node but partition 'cpu' has at most 32"),
    (dict(slurm_partition="gpus"), "slurm_partition='gpus' is not a partition of this cluster"),
])
def test_requests_no_node_can_meet_are_named_with_their_key(request_, fragment):
    problems = request_problems(**request_)
    assert any(fragment in problem for problem in problems), problems
    assert all(problem.startswith("train: ") for problem in problems)


def test_no_default_partition_and_none_named():
    partitions = partitions_from_sinfo(SINFO.replace("cpu*", "cpu"))
    assert check_request("evaluate", {"gpu": 1}, partitions) == [
        "evaluate: no slurm_partition set and the cluster has no default partition"]


GPU_RULES = ("train", "train_segment", "sample", "evaluate", "reference_statistics", "evaluate_ground_truth")


def test_the_shipped_profile_gives_every_gpu_rule_its_gpus_and_a_partition_placeholder():
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    profile = yaml.safe_load(text)
    resources = profile["set-resources"]
    # every rule that declares gpu=1 in the workflow has its GPUs and placeholder in the profile
    declared = set()
    for path in (REPO / "rules").glob("*.smk"):
        for match in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", path.read_text(), re.M | re.S):
            if re.search(r"resources:\s*\n\s*gpu=1", match.group(2)):
                declared.add(match.group(1))
    assert declared == set(GPU_RULES)
    blocks = {}
    for match in re.finditer(r"^  (\w+):(.*?)(?=^  \w+:|\Z)", text.split("set-resources:")[1], re.M | re.S):
        blocks[match.group(1)] = match.group(2)
    for rule in GPU_RULES:
        assert resources[rule]["gpu"] >= 1, rule
        shared = blocks[rule].strip().startswith("*")  # an alias of another rule's block (train_segment: *training)
        assert shared or re.search(r'#?\s*slurm_partition: "gpu"', blocks[rule]), f"{rule}: no partition placeholder"
        if resources[rule]["gpu"] > 1:
            assert resources[rule].get("nodes") == 1, f"{rule}: {resources[rule]['gpu']} GPUs without nodes: 1"
    assert resources["train_segment"] == resources["train"]
    for rule, settings in resources.items():  # CPU rules never ask for GPUs
        if rule not in GPU_RULES:
            assert not settings.get("gpu"), rule
    # the shipped training request, given the GPU partition, fits a cluster of 8-GPU nodes as it is
    assert check_request("train", dict(resources["train"], slurm_partition="gpu", _cores=16),
                         partitions_from_sinfo(SINFO)) == []


def test_asked_for_a_slurm_that_does_not_answer_is_a_failure_with_its_reason(tmp_path):
    """`CI=true PALETTE_TEST_SLURM=1 pytest tests/test_slurm.py` with no controller: red, never skipped."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sinfo").write_text("#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller' >&2\n"
                                "exit 1\n")
    (fake / "sinfo").chmod(0o755)
    environment = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", PALETTE_TEST_SLURM="1", CI="true")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                             str(REPO / "tests" / "test_slurm.py"), "-k", "ci_dag"],
                            cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Unable to contact slurm controller" in result.stdout and "skipped" not in result.stdout.split("\n")[-2]


# ----------------------------------------------------------------------------- squeue: the job's end time
def fake_squeue(tmp_path, monkeypatch, output: str, code: int = 0):
    """An `squeue` on PATH that prints OUTPUT (what `squeue -h -j JOB -o %e` prints) and exits CODE."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "squeue").write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\nexit {code}\n")
    (fake / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")


def test_the_seconds_left_come_from_squeues_end_time(tmp_path, monkeypatch):
    end = datetime.fromtimestamp(int(time.time()) + 3600)
    fake_squeue(tmp_path, monkeypatch, end.strftime("%Y-%m-%dT%H:%M:%S"))
    assert slurm_seconds_left("42") == pytest.approx(3600, abs=60)


@pytest.mark.parametrize("output, code", [("N/A", 0), ("Unknown", 0), ("", 0),
                                          ("slurm_load_jobs error: Invalid job id specified", 1)])
def test_no_end_time_from_squeue_is_no_limit(tmp_path, monkeypatch, output, code):
    fake_squeue(tmp_path, monkeypatch, output, code)
    assert slurm_seconds_left("42") is None


def test_outside_a_slurm_job_there_is_no_end_time(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm_seconds_left() is None
