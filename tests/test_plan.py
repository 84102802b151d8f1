"""palette plan: the numbers for the CI config, checked against a hand computation."""

from pathlib import Path

import pytest
import yaml

from palette.cli import main
from palette.plan import gpu_hours, plan, stage_totals

REPO = Path(__file__).resolve().parents[1]


def test_plan_of_the_ci_config_matches_a_hand_computation():
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    parameters, forward = 1000, 10**6  # a stand-in model: the counting is what is checked here
    result = plan(config, model=lambda train: (parameters, forward))
    totals = stage_totals(result)
    # train: three experiments x 6 steps x batch 4, forward + backward = 3 forward passes
    assert totals["train"]["images"] == 3 * 6 * 4 and totals["train"]["flops"] == 3 * forward * 72
    # sample: 4 evaluation images x 2 samples each; ddim_2 takes 2 passes (inpainting, the
    # unconditional model), the sweep adds dpm_solver_pp_3 (3 passes) for inpainting, the
    # regression model takes 1
    assert totals["sample"]["images"] == 8 + 8 + 8 + 8
    assert totals["sample"]["evaluations"] == 8 * 2 + 8 * 3 + 8 * 1 + 8 * 2
    assert totals["sample"]["flops"] == forward * 64
    # checkpoints: last + previous resumable states (16 B/parameter) and the final EMA (8 B) each
    assert result["disk"]["checkpoints"] == 3 * (2 * 16 * parameters + 8 * parameters)
    assert result["disk"]["samples"] == 32 * 32 * 32 * 3
    # GPU-hours at 50 % of the H200's 989 TFLOP/s bf16 peak
    assert gpu_hours(989e12 * 0.5 * 3600, "NVIDIA H200", 0.5) == pytest.approx(1.0)


def test_plan_command_prints_every_stage_and_the_total(capsys):
    assert main(["plan", "--configfile", str(REPO / "config" / "test.yaml"), "--gpu", "H100", "--mfu", "0.4"]) == 0
    out = capsys.readouterr().out
    assert "H100 at 40% MFU" in out and all(word in out for word in ("train", "sample", "evaluate", "total", "disk:"))
    assert main(["plan", "--configfile", str(REPO / "config" / "test.yaml"), "--gpu", "TPU"]) == 2  # one-line error


def test_the_report_sets_planned_beside_measured():
    from palette.report import planned_against_measured

    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    rows = planned_against_measured(config, [{"stage": "train", "seconds": 10.0}])
    train = next(row for row in rows if row["stage"] == "train")
    assert train["images"] == 72 and train["flops_per_s"] == pytest.approx(train["flops"] / 10.0)
    assert next(row for row in rows if row["stage"] == "sample")["seconds"] is None
    config["dataset"]["evaluation_images"] = None  # unknown before the data rules run: no section
    assert planned_against_measured(config, []) == []
