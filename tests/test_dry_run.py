"""The workflow tells what data is missing when the DAG is built: a dry run prints one block per
missing data set before its plan, a real run prints it and stops before any job; with stand-in
data (palette.standins) there is nothing to tell, and the data and reference listing rules run
on it through the real scripts (ctest10k and the Places2 archives fetched through file:// URLs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from palette.data import read_file_list
from palette.standins import OVERLAY_NAME, build

REPO = Path(__file__).resolve().parents[1]
HEADERS = {"imagenet": "Missing data: ImageNet (ILSVRC2012)", "celebahq": "Missing data: CelebA-HQ"}


def derived_config(tmp_path: Path, preset: str) -> Path:
    """A paper preset with its results, work and data folders in tmp_path (the data absent)."""
    config = yaml.safe_load((REPO / "config" / "presets" / f"{preset}.yaml").read_text())
    config["results_dir"], config["work_dir"] = str(tmp_path / "results"), str(tmp_path / "work")
    config["dataset"]["root"] = str(tmp_path / "data")
    path = tmp_path / f"{preset}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(*arguments: str, timeout: float = 300) -> tuple[int, str]:
    """Exit code and stdout + stderr as one stream, in the order they were written."""
    # targets and options first: --configfile takes every word after it
    result = subprocess.run([sys.executable, "-m", "snakemake", *arguments], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return result.returncode, result.stdout


@pytest.mark.parametrize("preset", ["imagenet", "celebahq"])
def test_dry_run_tells_what_is_missing_before_the_plan(tmp_path, preset):
    code, output = snakemake("-n", "--configfile", str(derived_config(tmp_path, preset)))
    assert code == 0, output[-3000:]
    header = output.find(HEADERS[preset])
    assert 0 <= header < output.index("Building DAG of jobs") < output.index("Job stats:"), output[:3000]
    block = output[header:].split("\n\n")[0].splitlines()
    data = tmp_path / "data" / preset
    wheres = [line.removeprefix("  where: ") for line in block if line.startswith("  where: ")]
    assert wheres and all(Path(where).is_relative_to(data) for where in wheres)
    assert len(wheres) == sum(line.startswith("  what:  ") for line in block) == \
        sum(line.startswith("  how:   ") for line in block)
    if preset == "imagenet":  # train, val and, as the preset scores CA, the labels
        assert wheres == [str(data / "train"), str(data / "val"),
                          str(data / "imagenet_2012_validation_synset_labels.txt")]
    assert "rule train:" in output  # the plan itself is complete


def test_places2_is_downloaded_so_nothing_is_missing(tmp_path):
    code, output = snakemake("-n", "--configfile", str(derived_config(tmp_path, "places2")))
    assert code == 0, output[-3000:]
    assert "Missing data:" not in output and "download_places2_archive" in output


def test_a_real_run_without_the_data_stops_before_any_job(tmp_path):
    code, output = snakemake("--cores", "1", "--configfile", str(derived_config(tmp_path, "imagenet")))
    assert code != 0
    assert HEADERS["imagenet"] in output
    assert "missing data for ImageNet (ILSVRC2012): see the lines above" in output, output[-3000:]
    assert "Finished jobid" not in output and "Select jobs to execute" not in output  # onstart stops it first
    assert not (tmp_path / "results").exists()  # nothing ran, not even the ctest10k download


@pytest.mark.parametrize("val_layout", ["flat", "wnid"])
def test_imagenet_stand_in_plans_silently_and_its_data_rules_run(tmp_path, val_layout):
    overlay = build("imagenet", tmp_path / "standin", val_layout=val_layout)
    config = derived_config(tmp_path, "imagenet")
    code, output = snakemake("-n", "--configfile", str(config), str(overlay))
    assert code == 0 and "Missing data:" not in output, output[-3000:]
    # which reference each variant is scored against (docs/paper.md, "Which set and reference each table uses")
    scored = {job["wildcards"]: job["input"] for job in planned_jobs(output, "evaluate_ground_truth")}
    assert "results/reference/imagenet_val_fid5k_reference.npz" in scored["task=colorization"]
    for task in ("colorization_ctest10k", "jpeg_q5", "uncropping_right"):
        assert "results/reference/imagenet_val50k.npz" in scored[f"task={task}"]
        assert "fid5k" not in scored[f"task={task}"]
    results = tmp_path / "results"
    targets = [results / "data" / "split" / "test.txt", results / "data" / "fid5k.txt",
               results / "data" / "imagenet_labels.csv", results / "reference" / "imagenet_val50k.txt",
               results / "reference" / "imagenet_val_fid5k_reference.txt"]
    code, output = snakemake(*map(str, targets), "--cores", "2", "--configfile", str(config), str(overlay))
    assert code == 0, output[-3000:]
    validation = tmp_path / "standin" / "imagenet" / "val"
    test = read_file_list(targets[0])
    assert len(test) == 12 and all(Path(path).is_file() and Path(path).is_relative_to(validation) for path in test)
    fid5k = read_file_list(targets[1])
    assert [Path(path).name for path in fid5k] == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 9)]
    assert all(Path(path).is_file() for path in fid5k)
    # FID-5K's own reference: the stand-in's 17..24 (dataset.expected.fid5k_reference_offset 16, 8 images), as
    # the paper's 10,001..15,000; never an evaluated image
    fid5k_reference = read_file_list(targets[4])
    assert [Path(path).name for path in fid5k_reference] == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(17, 25)]
    assert all(Path(path).is_file() for path in fid5k_reference) and not set(fid5k) & set(fid5k_reference)
    labels = targets[2].read_text().splitlines()
    assert labels[0] == "name,label" and len(labels) == 25 and {line.split(",")[1] for line in labels[1:]} == set("0123")
    assert len(read_file_list(targets[3])) == 24
    assert len(read_file_list(results / "data" / "split" / "train.txt")) == 24


def test_places2_stand_in_is_downloaded_extracted_and_listed(tmp_path):
    overlay = build("places2", tmp_path / "standin")
    config = derived_config(tmp_path, "places2")
    results = tmp_path / "results"
    targets = [results / "data" / "split" / "test.txt", results / "reference" / "places2_val36500.txt"]
    code, output = snakemake(*map(str, targets), "--cores", "2", "--configfile", str(config), str(overlay))
    assert code == 0, output[-3000:]
    archives = tmp_path / "standin" / "places2" / "archives"
    assert sorted(p.name for p in archives.iterdir() if p.suffix == ".tar") == sorted(
        yaml.safe_load(overlay.read_text())["dataset"]["places2_archives"]["md5"])
    test = read_file_list(targets[0])
    assert len(test) == 6 and all(Path(path).is_file() for path in test)
    assert len(read_file_list(results / "data" / "split" / "train.txt")) == 15
    assert len(read_file_list(targets[1])) == 12


def test_celebahq_stand_in_is_listed(tmp_path):
    overlay = build("celebahq", tmp_path / "standin")
    assert overlay.name == OVERLAY_NAME
    results = tmp_path / "results"
    target = results / "data" / "split" / "test.txt"
    config = derived_config(tmp_path, "celebahq")
    code, output = snakemake(str(target), "--cores", "1", "--configfile", str(config), str(overlay))
    assert code == 0 and "Missing data:" not in output, output[-3000:]
    listed = sum(len(read_file_list(results / "data" / "split" / f"{split}.txt")) for split in ("train", "val", "test"))
    assert listed == 40


def planned_jobs(output: str, rule: str) -> list[dict[str, str]]:
    """The dry run's jobs of `rule`, each as its "key: value" lines (input, output, wildcards, ...)."""
    jobs = []
    for block in output.split(f"rule {rule}:\n")[1:]:
        lines = block.split("\n\n")[0].splitlines()
        jobs.append(dict(line.strip().split(": ", 1) for line in lines if ": " in line))
    return jobs


def test_a_fid5k_reference_past_the_validation_set_is_refused_with_its_key(tmp_path):
    config = yaml.safe_load(derived_config(tmp_path, "imagenet").read_text())
    config["dataset"]["expected"] = {"imagenet_validation": 24, "fid5k": 8, "fid5k_reference_offset": 16,
                                     "fid5k_reference": 16}
    path = tmp_path / "too_small.yaml"
    path.write_text(yaml.safe_dump(config))
    code, output = snakemake("-n", "--configfile", str(path))
    assert code != 0
    assert ("dataset.expected.fid5k_reference_offset 16 + dataset.expected.fid5k_reference 16 runs past the 24 "
            "validation images (dataset.expected.imagenet_validation)") in output, output[-3000:]


def test_a_celebahq_reference_of_the_evaluation_targets_alone_is_refused(tmp_path):
    """Without a validation split the held-out reference would be the test split, the evaluation targets."""
    config = yaml.safe_load(derived_config(tmp_path, "celebahq").read_text())
    assert config["dataset"]["split"]["val"] > 0  # the preset's own split holds images out
    config["dataset"]["split"] = {"train": 0.9, "val": 0.0, "test": 0.1}
    path = tmp_path / "no_val.yaml"
    path.write_text(yaml.safe_dump(config))
    code, output = snakemake("-n", "--configfile", str(path))
    assert code != 0
    assert "dataset.split.val is 0, so the FID reference (evaluation.reference.splits: ['val', 'test'])" in output, \
        output[-3000:]


def job_counts(output: str) -> dict[str, int]:
    """The dry run's job stats table: rule -> jobs."""
    table = output[output.index("Job stats:"):].split("\n\n")[0].splitlines()[3:]
    return {rule: int(count) for rule, count in (line.split() for line in table if line.strip())}


def test_the_plan_prices_the_jobs_the_dag_has(tmp_path):
    """`palette plan` cuts the models and sampling runs as rules/common.smk does: the ImageNet preset's
    train_segment + train and sample jobs in its JSON equal the dry run's (each experiment's own
    segment_steps included: the attention ablation's are twice the default)."""
    config = derived_config(tmp_path, "imagenet")
    code, output = snakemake("-n", "--configfile", str(config))
    assert code == 0, output[-3000:]
    counts = job_counts(output)
    subprocess.run([sys.executable, "-m", "palette.cli", "plan", "--configfile", str(config), "--json",
                    str(tmp_path / "plan.json")], cwd=REPO, check=True, capture_output=True)
    totals = yaml.safe_load((tmp_path / "plan.json").read_text())["totals"]
    assert totals["train"]["jobs"] == counts["train_segment"] + counts["train"] == 738
    assert totals["sample"]["jobs"] == counts["sample"]


def test_a_chain_of_segments_too_long_for_snakemake_is_refused_with_the_key(tmp_path):
    config = yaml.safe_load(derived_config(tmp_path, "celebahq").read_text())
    config["training"]["segment_steps"] = 1000  # 1,000,000 steps: 999 segments
    path = tmp_path / "short_segments.yaml"
    path.write_text(yaml.safe_dump(config))
    code, output = snakemake("-n", "--configfile", str(path))
    assert code != 0
    assert ("experiments.inpainting: training.segment_steps cuts 1000000 steps into 999 train_segment jobs, "
            "more than the 200 one chain may have") in output, output[-3000:]
    assert "RecursionError" not in output
