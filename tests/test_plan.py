"""palette plan: evaluation-set sizes, one line per model and run, attempts at a profile's limits, the measured MFU.

The presets are planned with a stand-in network (`model_numbers` patched): the counting is what is checked, not
the 552 M U-Net's FLOPs, which would take seconds per experiment to count.
"""

import json
import math
import re
from pathlib import Path

import pytest
import yaml

import palette.plan as plan_module
from palette.cli import main
from palette.attempts import RESUME_RETRIES, safety_margin_seconds
from palette.plan import gpu_hours, plan, stage_totals

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "config" / "presets"
STAND_IN = (1000, 10**9)  # (parameters, forward FLOPs per image)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def stand_in_network(monkeypatch):
    monkeypatch.setattr(plan_module, "model_numbers", lambda train: STAND_IN)


def run_plan(tmp_path, capsys, *arguments) -> tuple[int, str, dict]:
    """`palette plan` with --json: (exit code, stdout, the JSON numbers)."""
    out = tmp_path / "plan.json"
    code = main(["plan", *map(str, arguments), "--json", str(out)])
    return code, capsys.readouterr().out, json.loads(out.read_text()) if out.exists() else {}


def evaluation_runs(config: dict) -> list[str]:
    """experiment/task/sampler of every sampling run, as rules/common.smk's evaluation_runs lists them."""
    sweep = config["sampling"].get("sweep") or {}
    runs = []
    for name, experiment in config["experiments"].items():
        for task in experiment["evaluate_on"]:
            if experiment["train"].get("objective") == "regression":
                runs.append(f"{name}/{task}/regression")
                continue
            samplers = list(experiment.get("samplers") or config["sampling"]["samplers"])
            if sweep.get("experiment") == name and sweep.get("task") == task:
                samplers += [s for s in sweep["samplers"] if s not in samplers]
            runs += [f"{name}/{task}/{sampler}" for sampler in samplers]
    return runs


def test_plan_of_the_ci_config_matches_a_hand_computation():
    config = load(REPO / "config" / "test.yaml")
    parameters, forward = 1000, 10**6  # a stand-in model: the counting is what is checked here
    result = plan(config, model=lambda train: (parameters, forward))
    totals = stage_totals(result)
    # train: three experiments x 6 steps x batch 4, forward + backward = 3 forward passes
    assert totals["train"]["images"] == 3 * 6 * 4 and totals["train"]["flops"] == 3 * forward * 72
    # sample: 4 evaluation images x 2 samples each; ddim_2 takes 2 passes (inpainting, the
    # unconditional model, the imported one), the sweep adds dpm_solver_pp_3 (3 passes) for
    # inpainting; the regression model draws one sample per input (rules/common.smk) in 1 pass
    assert totals["sample"]["images"] == 8 + 8 + 4 + 8 + 8
    assert totals["sample"]["evaluations"] == 8 * 2 + 8 * 3 + 4 * 1 + 8 * 2 + 8 * 2
    assert totals["sample"]["flops"] == forward * 76
    # checkpoints: last + previous resumable states (16 B/parameter) and the final EMA (8 B) of
    # each trained model; the imported one (role external) is not trained, only its final checkpoint (8 B)
    assert result["disk"]["checkpoints"] == 3 * (2 * 16 * parameters + 8 * parameters) + 8 * parameters
    assert result["disk"]["samples"] == 36 * 32 * 32 * 3
    # GPU-hours at 50 % of the H200's 989 TFLOP/s bf16 peak
    assert gpu_hours(989e12 * 0.5 * 3600, "NVIDIA H200", 0.5) == pytest.approx(1.0)


@pytest.mark.parametrize("preset, sizes", [
    ("imagenet.yaml", {"colorization": (5000, "fid5k"), "colorization_ctest10k": (10000, "ctest10k"),
                       "jpeg_q5": (10000, "ctest10k"), "jpeg_q10": (10000, "ctest10k"),
                       "jpeg_q20": (10000, "ctest10k"), "inpainting_center": (10000, "ctest10k"),
                       "inpainting_freeform_10_20": (10000, "ctest10k"), "uncropping_right": (10000, "ctest10k"),
                       "super_resolution": (10000, "ctest10k")}),
    ("places2.yaml", {"inpainting_center": (10950, "places10k"), "uncropping_right": (10950, "places10k")}),
    ("celebahq.yaml", {"inpainting_center": (3000, "celebahq_test"), "uncropping_right": (3000, "celebahq_test")}),
])
def test_every_preset_plans_without_flags_at_the_real_set_sizes(preset, sizes, stand_in_network, tmp_path, capsys):
    code, out, numbers = run_plan(tmp_path, capsys, "--configfile", PRESETS / preset)
    assert code == 0, out
    found = {task: (entry["inputs"], entry["list"]) for task, entry in numbers["evaluation_sets"].items()}
    assert {task: found[task] for task in sizes} == sizes
    config = load(PRESETS / preset)
    for row in numbers["rows"]:
        if row["stage"] == "sample":  # every run samples its whole set, two samples per input (regression: one)
            inputs = sizes.get(row["job"].split("/")[1], found[row["job"].split("/")[1]])[0]
            per_input = 1 if row["job"].endswith("/regression") else config["sampling"]["samples_per_input"]
            assert row["images"] == inputs * per_input
    # the data set's reference (CelebA-HQ: its val and test splits) and, for FID-5K, FID-5K's own 5000
    references = {"imagenet.yaml": [50000, 5000], "places2.yaml": [36500], "celebahq.yaml": [6000]}[preset]
    for reference in references:
        assert re.search(rf"^  {reference:,} images: (~\d+|<1) min of 240 min", out, re.M)
    assert [row["inputs"] for row in numbers["rows"] if row.get("rule") == "reference_statistics"] == references


def test_one_line_per_model_and_per_sampling_run_and_totals_are_their_sums(stand_in_network, tmp_path, capsys):
    preset = PRESETS / "imagenet.yaml"
    code, out, numbers = run_plan(tmp_path, capsys, "--configfile", preset)
    assert code == 0
    config = load(preset)
    lines = out.splitlines()
    for name in config["experiments"]:
        assert sum(line.split()[0] == name for line in lines if line.strip()) == 1, name
    runs = evaluation_runs(config)
    assert len(runs) == 33  # colorization and its regression also on colorization_ctest10k
    for run in runs:
        assert sum(line.split()[0] == run for line in lines if line.strip()) == 1, run
    rows = numbers["rows"]
    assert [row["job"] for row in rows if row["stage"] == "train"] == list(config["experiments"])
    assert [row["job"] for row in rows if row["stage"] == "sample"] == runs
    grand = 0.0
    for stage, total in numbers["totals"].items():
        mine = [row for row in rows if row["stage"] == stage]
        for key in ("jobs", "attempts", "images", "evaluations", "flops"):
            assert total[key] == sum(row[key] for row in mine), (stage, key)
        assert total["gpu_hours"] == pytest.approx(sum(row["gpu_hours"] for row in mine))
        grand += total["gpu_hours"]
    printed = re.search(r"^total: .* ([\d,]+) H200-hours", out, re.M)
    assert int(printed.group(1).replace(",", "")) == round(grand)
    # the printed GPU-hours of the model lines add up to the train stage's (to their rounding)
    train_lines = [line for line in lines if line.split() and line.split()[0] in config["experiments"]]
    printed_train = sum(float(line.split()[5].replace(",", "")) for line in train_lines)
    assert printed_train == pytest.approx(numbers["totals"]["train"]["gpu_hours"], abs=len(train_lines))


def synthetic_profile(runtime_minutes: int, retries: int = 9) -> dict:
    resources = {"runtime": runtime_minutes, "gpu": 1}
    return {"retries": retries, "default-resources": {"runtime": 10, "gpu": 0},
            "set-resources": {rule: dict(resources) for rule in ("train", "train_segment", "sample")}}


def one_model_config(steps: int, segment_steps=None, inputs: int = 10, shard_size=None) -> dict:
    config = load(REPO / "config" / "test.yaml")
    config["experiments"] = {"inpainting": config["experiments"]["inpainting"]}
    config["train_defaults"].update(steps=steps, batch_size=1)
    config["training"] = {"segment_steps": segment_steps}
    config["dataset"]["evaluation_images"] = inputs
    config["sampling"].update(shard_size=shard_size, sweep=None)
    return config


def forward_for(usable_hours_wanted: float, steps: int, usable_seconds: float, mfu: float = 0.5) -> int:
    """Forward FLOPs that make `steps` optimizer steps (batch 1, 3 x forward each) take that many attempts'
    worth of usable time on one H200 at `mfu` of its bf16 peak."""
    return round(usable_hours_wanted * usable_seconds * 989e12 * mfu / (3 * steps))


@pytest.mark.parametrize("attempts_worth, expected", [(2.5, 3), (2.0, 2), (0.4, 1)])
def test_attempts_at_a_60_minute_limit(attempts_worth, expected):
    usable = 3600 - safety_margin_seconds(3600)  # 52 minutes: the trainer stops 8 minutes before the limit
    assert usable == 52 * 60
    forward = forward_for(attempts_worth, 1000, usable)
    result = plan(one_model_config(1000), model=lambda train: (1000, forward), profile=synthetic_profile(60),
                  mfu=0.5)
    train = next(row for row in result["rows"] if row["stage"] == "train")
    assert train["job_list"][0]["wall_hours"] * 3600 == pytest.approx(attempts_worth * usable, rel=1e-6)
    assert train["jobs"] == 1 and train["attempts"] == expected
    assert result["limits"]["train"]["usable_hours"] == pytest.approx(52 / 60)


def test_segments_and_shards_are_counted_and_timed_per_job():
    usable = 3600 - safety_margin_seconds(3600)
    forward = forward_for(2.5, 1000, usable)  # the whole training: 2.5 attempts' worth
    config = one_model_config(1000, segment_steps=400, inputs=10, shard_size=3)
    result = plan(config, model=lambda train: (1000, forward), profile=synthetic_profile(60), mfu=0.5)
    train = next(row for row in result["rows"] if row["stage"] == "train")
    assert [(job["rule"], job["steps"], job["attempts"]) for job in train["job_list"]] == [
        ("train_segment", 400, 1), ("train_segment", 400, 1), ("train", 200, 1)]  # 1.0, 1.0 and 0.5 attempts
    assert train["jobs"] == math.ceil(1000 / 400) and train["attempts"] == 3
    samples = [row for row in result["rows"] if row["stage"] == "sample"]
    assert samples and all(row["jobs"] == math.ceil(10 / 3) for row in samples)
    assert [shard["inputs"] for shard in samples[0]["shard_list"]] == [3, 3, 3, 1]
    assert sum(shard["gpu_hours"] for shard in samples[0]["shard_list"]) == pytest.approx(samples[0]["gpu_hours"])
    # `gpu` is the GPUs of the whole job: 4 of them train 4 times faster for the same GPU-hours
    profile = synthetic_profile(60)
    profile["set-resources"]["train"]["gpu"] = 4
    four = plan(one_model_config(1000), model=lambda train: (1000, forward), profile=profile, mfu=0.5)
    train_on_four = next(row for row in four["rows"] if row["stage"] == "train")
    assert train_on_four["job_list"][0]["wall_hours"] * 3600 == pytest.approx(2.5 * usable / 4)
    assert train_on_four["attempts"] == 1 and train_on_four["gpu_hours"] == pytest.approx(2.5 * usable / 3600)


def test_warnings_name_jobs_beyond_the_attempts_and_rules_the_profile_lacks():
    usable = 3600 - safety_margin_seconds(3600)
    forward = forward_for(4.5, 1000, usable)  # 5 attempts; the rules allow 4 (palette.attempts.RESUME_RETRIES 3)
    result = plan(one_model_config(1000), model=lambda train: (1000, forward), profile=synthetic_profile(60),
                  mfu=0.5)
    retries = RESUME_RETRIES
    assert result["limits"]["train"]["max_attempts"] == retries + 1 < 5
    assert any(w.startswith("train: 1 model needs 5 attempts") and "training.segment_steps" in w
               and f"rules' retries: {retries}" in w for w in result["warnings"]), result["warnings"]
    # a step longer than a 1-minute limit's 45 usable seconds: no attempt makes progress
    slow = forward_for(2.0, 1, 45)
    result = plan(one_model_config(1), model=lambda train: (1000, slow), profile=synthetic_profile(1), mfu=0.5)
    assert any("one optimizer step" in w and "longer than an attempt" in w for w in result["warnings"])
    # segments, but no set-resources.train_segment: default-resources (no GPU), and the plan says so
    profile = synthetic_profile(60)
    del profile["set-resources"]["train_segment"]
    result = plan(one_model_config(1000, segment_steps=400), model=lambda train: STAND_IN, profile=profile, mfu=0.5)
    assert result["limits"]["train_segment"]["gpus"] == 0
    assert any("train_segment asks for no GPU" in w and "no set-resources.train_segment" in w
               for w in result["warnings"])


def test_the_default_mfu_is_the_one_the_h200_measurement_implies(stand_in_network, tmp_path, capsys):
    import torch

    from palette.distributed import PEAK_FLOPS
    from palette.unet import __doc__ as unet_doc, build_unet, forward_flops

    assert "(348 vs 267 ms per forward+backward" in unet_doc and "batch 8 at 256" in unet_doc
    with torch.device("meta"):
        forward = forward_flops(build_unet("paper"), 256)
    derived = 3 * forward * (8 / 0.267) / PEAK_FLOPS["H200"][0]  # forward + backward, 30 images/s, bf16 peak
    assert plan_module.DEFAULT_MFU == pytest.approx(derived, rel=1e-9)
    code, out, numbers = run_plan(tmp_path, capsys, "--configfile", PRESETS / "celebahq.yaml")
    assert numbers["mfu"] == pytest.approx(derived, rel=1e-9)
    assert (f"MFU {derived:.2f} measured on one H200: 267 ms per forward+backward, batch 8, bf16, eager; "
            "palette/unet.py") in out
    code, out, numbers = run_plan(tmp_path, capsys, "--configfile", PRESETS / "celebahq.yaml", "--mfu", "0.4")
    assert numbers["mfu"] == 0.4 and "MFU 0.40 given" in out


def test_a_folder_without_evaluation_images_fails_naming_the_key(tmp_path, capsys):
    config = load(REPO / "config" / "test.yaml")
    config["dataset"].update(kind="folder", root=str(tmp_path / "photos"), evaluation_images=None)
    config["dataset"].pop("crops")
    path = tmp_path / "folder.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["plan", "--configfile", str(path)]) == 2
    captured = capsys.readouterr()
    message = captured.err.strip()
    assert len(message.splitlines()) == 1 and str(path) in message
    assert "dataset.evaluation_images" in message
    assert main(["plan", "--configfile", str(REPO / "config" / "test.yaml"), "--gpu", "TPU"]) == 2  # one line


def test_reference_and_evaluation_jobs_are_timed_from_the_measured_reading_rate(stand_in_network, tmp_path, capsys):
    code, out, numbers = run_plan(tmp_path, capsys, "--configfile", PRESETS / "imagenet.yaml")
    reference = next(row for row in numbers["rows"] if row["stage"] == "reference")
    inception = plan_module.metric_network_flops(256)["inception"]
    assert inception == pytest.approx(11.4e9, rel=0.01)  # 5.7 G multiply-adds at 299x299
    seconds = 50000 * plan_module.CPU_SECONDS["jpeg_500x375"] + 50000 * inception / (494.7e12 * numbers["mfu"])
    assert reference["wall_hours"] * 3600 == pytest.approx(seconds)
    assert reference["attempts"] == 1
    evaluate = next(row for row in numbers["rows"] if row["job"] == "colorization/colorization/paper_1000"
                    and row["stage"] == "evaluate")
    cpu = plan_module.CPU_SECONDS
    per_input = cpu["evaluate_input"] + cpu["evaluate_extra_sample"] + 2 * cpu["network_preprocess"]
    assert evaluate["cpu_hours"] * 3600 == pytest.approx(5000 * per_input)


def test_the_cpu_rates_are_measured_on_this_machine():
    measured = plan_module.measure_cpu_seconds(images=4, passes=1)
    assert set(measured) == set(plan_module.CPU_SECONDS)
    assert all(0 < seconds < 5 for seconds in measured.values())


def test_the_report_sets_planned_beside_measured():
    from palette.report import planned_against_measured

    config = load(REPO / "config" / "test.yaml")
    rows = planned_against_measured(config, [{"stage": "train", "seconds": 10.0}])
    train = next(row for row in rows if row["stage"] == "train")
    assert train["images"] == 72 and train["flops_per_s"] == pytest.approx(train["flops"] / 10.0)
    assert next(row for row in rows if row["stage"] == "sample")["seconds"] is None
    config["dataset"]["evaluation_images"] = None  # unknown before the data rules run: no section
    assert planned_against_measured(config, []) == []
