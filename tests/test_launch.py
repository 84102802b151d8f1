"""palette.launch: one launcher for every training shape, with the same exit codes on every path.

The multi-node path runs for real on this machine: two torchrun agents over gloo meet at a c10d
rendezvous, started by a stand-in for `srun` (tests/slurm/fake_bin/srun: N local copies of the
command, all killed when one fails, as srun --kill-on-bad-exit does). Under a real SLURM the
only difference is that srun places one copy per node.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from palette import data
from palette.checkpoint import load_checkpoint
from palette.launch import (
    build_command, first_host, launch, safety_margin_seconds, summarise_exit, time_budget_seconds,
)

REPO = Path(__file__).resolve().parents[1]
FAKE_SRUN = REPO / "tests" / "slurm" / "fake_bin" / "srun"


@pytest.fixture(scope="module")
def crop_list(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crops")
    files = data.make_crops(data.demo_photo_paths()[:2], folder, crop_size=40, scales=(0.5,), crops_per_scale=3)
    return data.write_file_list(folder / "train.txt", files)


def write_config(tmp_path: Path, crop_list: Path, **changes) -> Path:
    config = dict(name="launch", task="inpainting", preset="tiny", image_size=32, batch_size=4, steps=4,
                  warmup_steps=1, lr=1e-3, ema_decay=0.9, num_workers=0, log_every=2, checkpoint_every=2,
                  keep_every=None, tensorboard=False, progress_bar=False, train_files=str(crop_list), device="cpu")
    config.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train_args(config: Path, workdir: Path, *extra: str) -> list[str]:
    return ["--config", str(config), "--workdir", str(workdir), "--no-lease", *extra]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_safety_margin_is_five_percent_and_five_minutes_but_at_most_a_quarter():
    assert safety_margin_seconds(24 * 3600) == pytest.approx(0.05 * 24 * 3600 + 300)
    assert safety_margin_seconds(120) == pytest.approx(30)  # a 2-minute limit still trains 90 s
    assert time_budget_seconds(2) == pytest.approx(90)
    assert time_budget_seconds(1440) == pytest.approx(1440 * 60 * 0.95 - 300)
    assert time_budget_seconds(60, seconds_left=1800) == pytest.approx(1800 - 480)  # the job's real end time counts
    assert time_budget_seconds(None) is None and time_budget_seconds(0) is None


def test_first_host_of_a_slurm_node_list(monkeypatch):
    monkeypatch.setattr("palette.launch.shutil.which", lambda name: None)  # the parser, not scontrol
    assert first_host("gpu[003-005,9],cpu1") == "gpu003"
    assert first_host("node7") == "node7"
    assert first_host("a-b[10,12]") == "a-b10"


def test_commands_for_each_shape(tmp_path):
    single = build_command(["--config", "c"], tmp_path, gpus_per_node=1)
    assert single[1:4] == ["-m", "palette.launch", "worker"] and single[-3:] == ["train", "--config", "c"]
    node = build_command([], tmp_path, gpus_per_node=8)
    assert "--standalone" in node and "--nproc_per_node=8" in node and "--max-restarts=0" in node
    nodes = build_command([], tmp_path, gpus_per_node=8, nodes=4, rendezvous="gpu003:29431", run_id="palette-7")
    assert {"--nnodes=4", "--rdzv_backend=c10d", "--rdzv_endpoint=gpu003:29431", "--rdzv_id=palette-7"} <= set(nodes)
    with pytest.raises(ValueError, match="rendezvous"):
        build_command([], tmp_path, gpus_per_node=8, nodes=4)


def test_exit_summary_names_the_rank_that_died(tmp_path):
    for rank in (0, 2, 3):
        (tmp_path / f"rank{rank}.pid").write_text("1 host\n")
        (tmp_path / f"rank{rank}.exit").write_text("1\n")
    (tmp_path / "rank1.pid").write_text("1 host\n")
    code, message = summarise_exit(1, tmp_path, 4, None)
    assert code == 1 and message.startswith("rank 1 of 4 died")
    (tmp_path / "rank1.exit").write_text("75\n")
    for rank in (0, 2, 3):
        (tmp_path / f"rank{rank}.exit").write_text("75\n")
    assert summarise_exit(1, tmp_path, 4, "SIGTERM") == (75, None)  # torchrun's own 1 hides the ranks' 75
    (tmp_path / "rank2.exit").write_text("78\n")
    assert summarise_exit(1, tmp_path, 4, None)[0] == 78


def test_one_process_gets_the_cli_exit_codes(crop_list, tmp_path):
    config = write_config(tmp_path, crop_list)
    assert launch(train_args(config, tmp_path / "run"), tmp_path / "ranks", threads=1) == 0
    assert load_checkpoint(tmp_path / "run" / "final.pt")["step"] == 4
    budget = launch(train_args(config, tmp_path / "cut", "--steps", "100000", "--time-budget", "3"), tmp_path / "ranks")
    assert budget == 75 and (tmp_path / "cut" / "checkpoints" / "last.pt").exists()
    # a NaN loss: exit 65 with the trainer's one-line message, not a traceback and exit 1
    log = tmp_path / "nan.log"
    with open(log, "w") as handle:
        nan = launch(train_args(config, tmp_path / "nan", "--set", "lr=1.0e+30", "--steps", "40"), tmp_path / "ranks",
                     log=handle)
    assert nan == 65, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()
    bad = write_config(tmp_path, crop_list, learning_rate=1e-4)
    assert launch(train_args(bad, tmp_path / "bad"), tmp_path / "ranks") == 78


def run_two_agents(args: list[str], status_dir: Path, monkeypatch, log: Path) -> int:
    """launch() for nodes=2 inside a stand-in SLURM allocation on this machine."""
    monkeypatch.setenv("PATH", f"{FAKE_SRUN.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "launch-test")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "localhost")
    monkeypatch.setenv("PALETTE_RENDEZVOUS_PORT", str(free_port()))
    with open(log, "a") as handle:
        return launch(args, status_dir, gpus_per_node=0, nodes=2, threads=1, log=handle)


@pytest.mark.slow
def test_two_agents_over_gloo_train_and_a_dead_rank_stops_the_job_and_is_named(crop_list, tmp_path, monkeypatch):
    assert FAKE_SRUN.exists()
    config = write_config(tmp_path, crop_list, grad_accumulation=1)
    log = tmp_path / "agents.log"
    assert run_two_agents(train_args(config, tmp_path / "run"), tmp_path / "ranks", monkeypatch, log) == 0, \
        log.read_text()[-3000:]
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 4 and len(state["ranks"]) == 2  # one process on each of the two agents
    assert sorted(path.name for path in (tmp_path / "ranks").glob("*.exit")) == ["rank0.exit", "rank1.exit"]

    # rank 1 killed mid-run: the job ends within bounded time, the launcher names rank 1
    status, outcome = tmp_path / "ranks2", {}
    args = train_args(config, tmp_path / "run", "--steps", "100000", "--set", "checkpoint_every=2")
    runner = threading.Thread(target=lambda: outcome.setdefault("code", run_two_agents(args, status, monkeypatch, log)))
    runner.start()
    deadline = time.monotonic() + 120
    while not (status / "rank1.pid").exists() or load_checkpoint_step(tmp_path / "run") <= 4:
        assert time.monotonic() < deadline and runner.is_alive(), log.read_text()[-3000:]
        time.sleep(0.5)
    os.kill(int((status / "rank1.pid").read_text().split()[0]), signal.SIGKILL)
    killed = time.monotonic()
    runner.join(timeout=120)
    assert not runner.is_alive(), "the job did not end after a rank died"
    assert outcome["code"] == 1 and "rank 1 of 2 died" in log.read_text(), log.read_text()[-3000:]
    print(f"job ended {time.monotonic() - killed:.1f} s after rank 1 was killed")
    # the retry resumes from the last checkpoint
    resumed_from = load_checkpoint_step(tmp_path / "run")
    assert run_two_agents(train_args(config, tmp_path / "run", "--steps", str(resumed_from + 2)),
                          tmp_path / "ranks3", monkeypatch, log) == 0
    assert "resumed from" in log.read_text()
    assert load_checkpoint(tmp_path / "run" / "final.pt")["step"] == resumed_from + 2


def load_checkpoint_step(workdir: Path) -> int:
    try:
        return int(torch.load(workdir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["step"])
    except (OSError, EOFError, RuntimeError, KeyError):
        return 0
