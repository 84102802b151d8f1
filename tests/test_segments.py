"""Training in segments (rules/train.smk, `palette train --segment`) and the attempt log
(palette.attempts): a run cut into segments, each cut again by its time budget, ends with the
weights of one uninterrupted run; a segment already passed is done at once; an attempt whose
predecessor made no progress is stopped with one line, a SLURM requeue is not judged."""

import torch

from palette.attempts import AttemptLog
from palette.checkpoint import CheckpointFolder, load_checkpoint
from palette.train import TrainingPreempted, train

CONFIG = dict(name="seg", task="colorization", preset="tiny", image_size=32, batch_size=2, num_workers=0,
              warmup_steps=2, log_every=2, checkpoint_every=2, steps=6)


def weights(path):
    state = load_checkpoint(path)
    return state["step"], {**{f"model.{k}": v for k, v in state["model"].items()},
                           **{f"ema.{k}": v for k, v in state["ema"].items()}}


def test_segments_cut_by_budgets_end_with_the_uninterrupted_weights(tmp_path):
    reference = train(CONFIG, tmp_path / "whole", tmp_path / "whole.pt")
    work = tmp_path / "segmented"
    folder = CheckpointFolder(work / "checkpoints")
    assert folder.latest_step() == 0
    stops = 0
    for end in (3, 5):  # segment ends need not be checkpoint multiples
        while True:
            try:
                # a budget already spent: one step per attempt, then save and exit 75, as a time limit would
                assert train(dict(CONFIG, steps=end, time_budget=1e-9), work, segment=True) is None
                break
            except TrainingPreempted:
                stops += 1
        assert folder.latest_step() == end
        assert not (work / "final.pt").exists()
    assert stops == 3  # steps 1, 2 of the first segment and 4 of the second stopped early
    train(CONFIG, work, tmp_path / "segmented.pt")
    step, segmented = weights(tmp_path / "segmented.pt")
    reference_step, uninterrupted = weights(reference)
    assert step == reference_step == 6
    assert segmented.keys() == uninterrupted.keys()
    assert all(torch.equal(segmented[key], uninterrupted[key]) for key in segmented)


def test_a_segment_the_work_folder_has_passed_is_done_at_once(tmp_path):
    train(dict(CONFIG, steps=4), tmp_path / "work", segment=True)
    last = tmp_path / "work" / "checkpoints" / "last.pt"
    before = last.stat().st_mtime_ns
    assert train(dict(CONFIG, steps=2), tmp_path / "work", segment=True) is None  # a rerun of an earlier segment
    assert last.stat().st_mtime_ns == before and CheckpointFolder(last.parent).latest_step() == 4


def test_an_attempt_after_one_without_progress_is_stopped_with_one_line(tmp_path, monkeypatch):
    log = AttemptLog(tmp_path / "attempts.tsv")
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    log.begin("segment to step 2000", 1, 1000)
    log.end("segment to step 2000", 1, 1000, 75)
    assert log.stalled("segment to step 2000", 1, 1000) is None  # the first attempt of an invocation never stops
    message = log.stalled("segment to step 2000", 2, 1000)
    assert message and "\n" not in message
    assert "attempt 1 (SLURM job 41) made no progress" in message and "step 1000" in message
    assert "exit 75" in message
    assert log.stalled("segment to step 3000", 2, 1000) is None  # another job's history does not count
    # progress made: the next attempt runs
    log.begin("segment to step 2000", 2, 1000)
    assert log.stalled("segment to step 2000", 3, 1500) is None
    # a SLURM requeue keeps the attempt number: attempt 3 restarted is not judged against attempt 3
    log.begin("segment to step 2000", 3, 1500)
    assert log.stalled("segment to step 2000", 3, 1500) is None
    # killed before it could record its end: the message says so
    assert "killed before it could record its end" in log.stalled("segment to step 2000", 4, 1500)
    assert [row["attempt"] for row in log.attempts("segment to step 2000")] == ["1", "2", "3"]


def test_the_attempt_log_survives_a_cut_row(tmp_path):
    log = AttemptLog(tmp_path / "attempts.tsv")
    log.begin("final (step 10)", 1, 0)
    with open(log.path, "a") as handle:
        handle.write("begin\tfinal (step 10)\t2\t\t0\thost\t2026-")  # a row cut by a kill
    assert [row["attempt"] for row in log.attempts("final (step 10)")] == ["1"]
    log.begin("final (step 10)", 2, 4)
    assert log.stalled("final (step 10)", 3, 4) is not None


def test_the_resumable_rules_retry_in_the_main_process_only():
    """`palette plan` counts RESUME_RETRIES for these rules; the rules must use it, and through the
    constant that is 0 in a job step (a rule's own retries would make a compute node retry by itself,
    past its time limit)."""
    import re
    from pathlib import Path

    from palette.attempts import RESUMABLE_RULES

    repo = Path(__file__).resolve().parents[1]
    found = {}
    for path in (repo / "rules").glob("*.smk"):
        for match in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", path.read_text(), re.M | re.S):
            retries = re.search(r"^\s+retries: (\S+)$", match.group(2), re.M)
            found[match.group(1)] = retries.group(1) if retries else None
    assert {rule: found[rule] for rule in RESUMABLE_RULES} == {rule: "RESUME_RETRIES" for rule in RESUMABLE_RULES}
    common = (repo / "rules" / "common.smk").read_text()
    assert "RESUME_RETRIES = ATTEMPT_RETRIES if workflow.is_main_process else 0" in common
