"""The SLURM profile's early check: every rule's request against what the cluster's partitions offer.

snakemake-executor-plugin-slurm submits whatever the profile asks; a request no node can meet
(8 GPUs on a CPU partition, 256 GB on 32 GB nodes, a runtime over the partition's limit) then
waits in the queue forever or is refused job by job, hours into a run. The Snakefile calls
`check_workflow` when the executor is slurm: it reads the partitions once with `sinfo` and stops
before the first submission with one line per unmet request, naming the rule and the resource key
to change (set-resources / default-resources in the profile). A dry run (-n) uses Snakemake's
dry-run executor, not slurm, so it plans a profile anywhere without checking; without sinfo there
is nothing to check against either.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field


class SlurmRequestError(ValueError):
    """A rule asks for more than any node of its partition has."""


@dataclass
class Partition:
    name: str
    default: bool = False
    nodes: int = 0
    cpus: int = 0  # most CPUs on one node
    memory_mb: int = 0  # most memory on one node
    gpus: int = 0  # most GPUs on one node
    gpu_models: set[str] = field(default_factory=set)
    time_limit_minutes: float | None = None  # None: unlimited


# SLURM's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS (sbatch --time, sinfo %l)
TIME_LIMIT = re.compile(r"(?:(?P<days>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?")


def parse_time_limit(text: str) -> float | None:
    """A SLURM time limit -> minutes; None for infinite. The fields' meaning depends on the form:
    with a day part they are hours[:minutes[:seconds]], without one minutes[:seconds] or
    hours:minutes:seconds."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    match = TIME_LIMIT.fullmatch(text)
    if not match:
        raise ValueError(f"SLURM time limit {text!r} is not one of MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                         f"D-HH:MM:SS, UNLIMITED")
    days, a, b, c = (int(value) if value else None for value in match.group("days", "a", "b", "c"))
    if days is not None:
        hours, minutes, seconds = a, b or 0, c or 0
    elif c is not None:
        hours, minutes, seconds = a, b, c
    else:
        hours, minutes, seconds = 0, a, b or 0
    return 1440 * (days or 0) + 60 * hours + minutes + seconds / 60


def parse_gres(text: str) -> tuple[int, set[str]]:
    """A node's gres -> (its GPUs, their models): 'gpu:h100:8(S:0-1)' -> (8, {'h100'});
    'gpu:a100:2,gpu:h100:4' -> (6, {'a100', 'h100'}) (an untyped request may take GPUs of both);
    '(null)' -> (0, set())."""
    total, models = 0, set()
    for model, count in re.findall(r"(?<![\w-])gpu(?::([A-Za-z0-9_.\-]+))?:(\d+)", text):
        total += int(count)
        if model:
            models.add(model)
    return total, models


def partitions_from_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from `sinfo -h -N -o '%P|%n|%c|%m|%G|%l'` (one line per node and partition)."""
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        name, _node, cpus, memory, gres, limit = fields
        default = name.endswith("*")
        name = name.rstrip("*")
        if name not in partitions:
            try:
                partitions[name] = Partition(name, default, time_limit_minutes=parse_time_limit(limit))
            except ValueError as error:
                raise ValueError(f"sinfo, partition {name!r}: {error}") from None
        partition = partitions[name]
        gpus, models = parse_gres(gres)
        partition.nodes += 1
        partition.cpus = max(partition.cpus, int(re.sub(r"\D", "", cpus) or 0))
        partition.memory_mb = max(partition.memory_mb, int(re.sub(r"\D", "", memory) or 0))
        partition.gpus = max(partition.gpus, gpus)
        partition.gpu_models |= models
    return partitions


def read_partitions() -> dict[str, Partition] | None:
    if shutil.which("sinfo") is None:
        return None
    result = subprocess.run(["sinfo", "-h", "-N", "-o", "%P|%n|%c|%m|%G|%l"], capture_output=True, text=True, timeout=60)
    return partitions_from_sinfo(result.stdout) if result.returncode == 0 else None


def number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def check_request(rule: str, request: dict, partitions: dict[str, Partition]) -> list[str]:
    """What in `request` (resource key -> value, plus '_cores' for threads) no node can meet."""
    problems = []
    name = request.get("slurm_partition")
    if name:
        partition = partitions.get(name)
        if partition is None:
            return [f"{rule}: slurm_partition={name!r} is not a partition of this cluster (sinfo lists "
                    f"{', '.join(sorted(partitions)) or 'none'})"]
    else:
        partition = next((p for p in partitions.values() if p.default), None)
        if partition is None:
            return [f"{rule}: no slurm_partition set and the cluster has no default partition"]
    where = f"partition {partition.name!r}"
    nodes = int(number(request.get("nodes")) or 1)
    gpus = int(number(request.get("gpu")) or 0)
    gpus_per_node = gpus // nodes if gpus else 0
    if nodes > partition.nodes:
        problems.append(f"{rule}: nodes={nodes} but {where} has {partition.nodes} node(s)")
    if gpus and gpus % nodes:
        problems.append(f"{rule}: gpu={gpus} (the job's GPUs on all nodes) is not a multiple of nodes={nodes}")
    if gpus_per_node > partition.gpus:
        problems.append(f"{rule}: gpu={gpus} on {nodes} node(s) needs {gpus_per_node} GPUs per node but {where} "
                        f"has at most {partition.gpus}; set `gpu` (0 for the CPU) or `slurm_partition`")
    model = request.get("gpu_model")
    if gpus and model and partition.gpu_models and model not in partition.gpu_models:
        problems.append(f"{rule}: gpu_model={model!r} but {where} has {', '.join(sorted(partition.gpu_models))}")
    if gpus > 1 and number(request.get("nodes")) is None:
        problems.append(f"{rule}: gpu={gpus} (the job's GPUs) without `nodes`: SLURM may spread them over several "
                        f"machines; set nodes: 1 for one machine, or nodes: N with mpi (docs/slurm.md)")
    if gpus and nodes > 1 and "mpi" not in request:
        problems.append(f"{rule}: nodes={nodes} needs `mpi` and `tasks_per_node` set (the launcher starts one "
                        f"agent per node with srun; README, SLURM)")
    cpus_per_gpu = number(request.get("cpus_per_gpu"))
    if number(request.get("cpus_per_task")):
        cpus, key = number(request["cpus_per_task"]), "cpus_per_task"
    elif gpus and cpus_per_gpu:
        cpus, key = cpus_per_gpu * gpus_per_node, "cpus_per_gpu"
    else:
        cpus, key = number(request.get("_cores")) or 1, "threads (set-threads)"
    if cpus > partition.cpus:
        problems.append(f"{rule}: {key} asks for {cpus:g} CPUs per node but {where} has at most {partition.cpus}")
    memory = number(request.get("mem_mb"))
    if memory and memory > partition.memory_mb:
        problems.append(f"{rule}: mem_mb={memory:g} but {where} has at most {partition.memory_mb} MB per node")
    runtime = number(request.get("runtime"))
    if runtime and partition.time_limit_minutes is not None and runtime > partition.time_limit_minutes:
        problems.append(f"{rule}: runtime={runtime:g} min but {where} allows {partition.time_limit_minutes:g} min")
    return problems


def workflow_requests(workflow) -> dict[str, dict]:
    """rule -> the resources its jobs will be submitted with (default-resources, the rule's own,
    set-resources, evaluated), from one job per rule of the DAG about to run."""
    requests = {}
    for job in workflow.dag.needrun_jobs():
        if job.is_group() or job.rule.name in requests or job.rule.norun:
            continue
        request = {key: value for key, value in dict(job.resources).items()
                   if isinstance(value, (int, float, str))}
        request["_cores"] = job.threads
        requests[job.rule.name] = request
    return requests


def check_workflow(workflow) -> None:
    """Stop before any submission when the cluster cannot meet a rule's request."""
    partitions = read_partitions()
    if not partitions:
        return
    problems = []
    for rule, request in workflow_requests(workflow).items():
        problems += check_request(rule, request, partitions)
    if not problems:
        return
    message = ("the SLURM profile asks for what this cluster cannot give (change these keys in the profile's "
               "set-resources / default-resources or with --set-resources):\n  " + "\n  ".join(problems))
    raise SlurmRequestError(message)
