"""The human 2AFC study: building, the answer log, the web server's refusals, scoring, and a rater
clicking through the page in a real headless Chromium (skipped, with the reason, where none can be
installed or started; a failure with the reason under CI=true or PALETTE_TEST_BROWSER=1)."""

import csv
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import unavailable
from palette import study as S
from palette.imageio import save_image


@pytest.fixture
def study_dir(tmp_path):
    """A study of 4 inputs: real images are smooth gradients, the 'model' outputs a noisier copy."""
    rng = np.random.default_rng(0)
    for i in range(4):
        ramp = np.linspace(0, 255, 24)
        real = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.full((24, 24), 60.0 * i)), -1)
        save_image(tmp_path / "set" / "target" / f"img{i}.png", real.astype(np.uint8))
        fake = np.clip(real + rng.normal(0, 20, real.shape), 0, 255).astype(np.uint8)
        save_image(tmp_path / "samples" / "sample_0" / f"img{i}.png", fake)
    S.build_study(tmp_path / "set", tmp_path / "samples", tmp_path / "study", raters=3, trials_per_rater=6,
                  catch_trials=2, seed=5, task="colorization", label="test")
    return tmp_path / "study"


def test_build_is_seeded_and_balanced(study_dir, tmp_path):
    study = S.load_study(study_dir)
    assert study["paper_fool_rate"] == 47.8
    assert len(study["raters"]) == 3
    for trials in study["raters"].values():
        assert len(trials) == 6 and sum(t["kind"] == "catch" for t in trials) == 2
        model_names = [t["name"] for t in trials if t["kind"] == "model"]
        assert len(set(model_names)) == 4  # every input once before any repeats
        for t in trials:
            real = S._opaque_name(5, "real", t["name"])
            assert (t["left"] == real) == (t["real_side"] == "left") and real in (t["left"], t["right"])
            assert (study_dir / "images" / t["left"]).exists() and (study_dir / "images" / t["right"]).exists()
    sides = [t["real_side"] for trials in study["raters"].values() for t in trials]
    assert {"left", "right"} == set(sides)
    S.build_study(tmp_path / "set", tmp_path / "samples", tmp_path / "again", raters=3, trials_per_rater=6,
                  catch_trials=2, seed=5, task="colorization", label="test")
    assert (tmp_path / "again" / "study.json").read_text() == (study_dir / "study.json").read_text()
    with pytest.raises(S.StudyError, match="catch_trials"):
        S.build_study(tmp_path / "set", tmp_path / "samples", tmp_path / "bad", trials_per_rater=3, catch_trials=3)


def _answer_all(log, study, choose):
    """Answer every trial of every rater with choose(trial) -> side; returns the hand count."""
    fooled = model_trials = 0
    for token, trials in study["raters"].items():
        for trial in trials:
            side = choose(token, trial)
            log.record(token, trial["id"], side, 1234)
            if trial["kind"] == "model":
                model_trials += 1
                fooled += side != trial["real_side"]
    return fooled, model_trials


def test_score_matches_a_hand_count_and_excludes_raters_failing_catch_trials(study_dir):
    study = S.load_study(study_dir)
    log = S.AnswerLog(study, study_dir / S.ANSWERS_FILE)
    tokens = list(study["raters"])
    flip = {"left": "right", "right": "left"}

    def choose(token, trial):
        if trial["kind"] == "catch":  # the last rater fails a catch trial
            return flip[trial["real_side"]] if token == tokens[-1] else trial["real_side"]
        return flip[trial["real_side"]] if int(trial["id"], 16) % 3 == 0 else trial["real_side"]

    _answer_all(log, study, choose)
    result = S.score_study(study_dir)
    kept = [t for t in tokens[:-1]]
    fooled = sum(choose(tok, t) != t["real_side"] for tok in kept for t in study["raters"][tok] if t["kind"] == "model")
    total = sum(t["kind"] == "model" for tok in kept for t in study["raters"][tok])
    assert (result["fooled"], result["model_trials"]) == (fooled, total) == (result["fooled"], 8)
    assert result["fool_rate"] == pytest.approx(100 * fooled / total)
    assert result["raters_included"] == 2 and len(result["raters_excluded"]) == 1
    # the pooled Wilson interval by hand: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    z, n, p = 1.959963984540054, total, fooled / total
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert result["pooled_ci_low"] == pytest.approx(100 * (centre - half) / (1 + z * z / n))
    assert result["pooled_ci_high"] == pytest.approx(100 * (centre + half) / (1 + z * z / n))
    assert "Wilson" in result["pooled_interval"] and "pooled" in result["pooled_interval"]
    # the reported interval resamples the two kept raters
    assert result["interval"].startswith("cluster bootstrap over 2 raters") and result["interval_raters"] == 2
    assert result["ci_low"] <= result["pooled_ci_low"] <= result["fool_rate"]
    assert result["fool_rate"] <= result["pooled_ci_high"] <= result["ci_high"]
    lenient = S.score_study(study_dir, min_catch_accuracy=0.0)
    assert lenient["raters_included"] == 3 and lenient["model_trials"] == 12


# ---------------------------------------------------------------------------------------------
# The interval over raters


def _rater_dependent_answers(tmp_path, raters, trials_per_rater, fooled_raters):
    """A study of `raters` raters answered in full: the first `fooled_raters` pick the model's output
    in every model trial, the others never do; everyone gets the catch trials right."""
    S.build_study(tmp_path / "set", tmp_path / "samples", tmp_path / "many", raters=raters,
                  trials_per_rater=trials_per_rater, catch_trials=2, seed=3, task="colorization")
    study = S.load_study(tmp_path / "many")
    log = S.AnswerLog(study, tmp_path / "many" / S.ANSWERS_FILE)
    fooled_tokens = set(list(study["raters"])[:fooled_raters])
    flip = {"left": "right", "right": "left"}
    _answer_all(log, study, lambda token, trial: flip[trial["real_side"]]
                if trial["kind"] == "model" and token in fooled_tokens else trial["real_side"])
    return tmp_path / "many"


def test_interval_over_raters_is_wide_when_raters_differ(study_dir, tmp_path):
    # half the raters always fooled, half never: the answers say little more than 20 coin flips,
    # one per rater, however many trials each answered
    many = _rater_dependent_answers(tmp_path, raters=20, trials_per_rater=12, fooled_raters=10)
    result = S.score_study(many)
    assert (result["fool_rate"], result["model_trials"], result["interval_raters"]) == (50.0, 200, 20)
    assert result["interval"] == "cluster bootstrap over 20 raters (95 %, 10000 resamples, percentile)"
    width = result["ci_high"] - result["ci_low"]
    pooled_width = result["pooled_ci_high"] - result["pooled_ci_low"]
    assert width > 2.5 * pooled_width  # ~sqrt(10 trials per rater) wider
    # the rate of 20 raters who are each fooled always or never: Binomial(20, 1/2) / 20, whose
    # central 95 % is 30-70 %
    assert result["ci_low"] == pytest.approx(30, abs=3) and result["ci_high"] == pytest.approx(70, abs=3)


def test_interval_over_raters_is_never_narrower_than_the_pooled_one(tmp_path, study_dir):
    # no rater is ever fooled: resampling raters sees no spread and collapses to 0-0 %, which
    # forgets that 60 trials could still hide a small fool rate
    never = _rater_dependent_answers(tmp_path, raters=6, trials_per_rater=12, fooled_raters=0)
    result = S.score_study(never)
    assert S.rater_bootstrap_interval([0] * 6, [10] * 6) == (0.0, 0.0)
    assert result["fool_rate"] == 0.0 and result["pooled_ci_high"] > 5
    assert (result["ci_low"], result["ci_high"]) == (result["pooled_ci_low"], result["pooled_ci_high"])
    assert result["interval"].endswith("widened to contain the pooled binomial interval")


def test_interval_over_raters_covers_the_true_rate_where_the_pooled_one_does_not():
    # 200 simulated studies of 20 raters x 10 model trials; each rater has their own rate (drawn
    # from a population whose mean is 50 %): always or never fooled, or a Beta(2, 2) rate
    rng = np.random.default_rng(0)
    trials = np.full(20, 10)
    for rater_rates, at_least, pooled_at_most in (
        (lambda: rng.choice([0.0, 1.0], 20), 0.9, 0.6),
        (lambda: rng.beta(2.0, 2.0, 20), 0.9, 0.85),
    ):
        covered = pooled_covered = 0
        for study in range(200):
            fooled = rng.binomial(trials, rater_rates())
            low, high = S.rater_bootstrap_interval(fooled, trials, resamples=2000, seed=study)
            pooled_low, pooled_high = S.binomial_interval(int(fooled.sum()), int(trials.sum()))
            covered += low <= 0.5 <= high
            pooled_covered += pooled_low <= 0.5 <= pooled_high
        assert covered / 200 >= at_least and pooled_covered / 200 <= pooled_at_most, (covered, pooled_covered)


def test_interval_over_raters_matches_the_binomial_one_for_independent_trials():
    # every rater fooled at 30 %, independently in every trial: the trials are independent
    rng = np.random.default_rng(1)
    trials = np.full(200, 20)
    fooled = rng.binomial(trials, 0.3)
    low, high = S.rater_bootstrap_interval(fooled, trials)
    pooled_low, pooled_high = S.binomial_interval(int(fooled.sum()), int(trials.sum()))
    assert low == pytest.approx(pooled_low, abs=0.003) and high == pytest.approx(pooled_high, abs=0.003)
    assert (high - low) / (pooled_high - pooled_low) == pytest.approx(1.0, abs=0.1)


def test_interval_over_raters_is_seeded_and_needs_two_raters(study_dir):
    trials = np.array([10, 12, 9, 11, 10, 8, 12, 10, 9, 11, 10, 12])
    fooled = np.array([2, 9, 4, 6, 5, 1, 7, 3, 8, 4, 6, 5])
    assert S.rater_bootstrap_interval(fooled, trials, seed=4) == S.rater_bootstrap_interval(fooled, trials, seed=4)
    assert S.rater_bootstrap_interval(fooled, trials, seed=4) != S.rater_bootstrap_interval(fooled, trials, seed=5)
    assert S.rater_bootstrap_interval([3], [10]) is None
    with pytest.raises(ValueError, match="at least one model trial"):
        S.rater_bootstrap_interval([0, 1], [0, 4])

    study = S.load_study(study_dir)
    log = S.AnswerLog(study, study_dir / S.ANSWERS_FILE)
    token = next(iter(study["raters"]))
    for trial in study["raters"][token]:  # one rater only
        log.record(token, trial["id"], trial["real_side"] if trial["kind"] == "catch" else "left")
    result = S.score_study(study_dir)
    assert result["fool_rate"] is not None and result["pooled_ci_low"] is not None
    assert (result["ci_low"], result["ci_high"], result["interval_method"]) == (None, None, None)
    assert result["interval"].startswith("fewer than 2 raters (1 with model trials)")
    from palette.study_cli import format_score

    assert "no 95 % interval (fewer than 2 raters" in format_score(result)


def test_score_is_the_same_for_the_same_seed(tmp_path, study_dir):
    many = _rater_dependent_answers(tmp_path, raters=6, trials_per_rater=8, fooled_raters=2)
    first, again = S.score_study(many, seed=7), S.score_study(many, seed=7)
    assert first == again and first["bootstrap_seed"] == 7
    other = S.score_study(many, seed=8, resamples=20_000)
    assert other["bootstrap_resamples"] == 20_000
    assert (other["ci_low"], other["ci_high"]) == pytest.approx((first["ci_low"], first["ci_high"]), abs=3)


def test_answer_log_survives_a_crash_and_refuses_another_studys_file(study_dir, tmp_path):
    study = S.load_study(study_dir)
    path = study_dir / S.ANSWERS_FILE
    log = S.AnswerLog(study, path)
    token = next(iter(study["raters"]))
    first, second = study["raters"][token][:2]
    log.record(token, first["id"], "left")
    intact = path.read_bytes()
    with open(path, "ab") as handle:  # a crash in the middle of writing the next row
        handle.write(f"{study['study_id']},2026-01-01T00:00:00Z,{token},{second['id']},1,mo".encode())
    assert S.score_study(study_dir)["answers"] == 1  # the reader ignores the cut row and changes nothing
    reopened = S.AnswerLog(study, path)
    assert path.read_bytes() == intact
    assert reopened.next_trial(token) == (1, second)
    other = tmp_path / "other.csv"
    other.write_text(path.read_text().replace(study["study_id"], "0123456789abcdef"))
    with pytest.raises(S.StudyError, match="line 2: an answer of study '0123456789abcdef'"):
        S.AnswerLog(study, other)


# ---------------------------------------------------------------------------------------------
# The server


@pytest.fixture
def server(study_dir):
    server = S.make_server(study_dir, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _request(url, data=None):
    body = None if data is None else (data if isinstance(data, bytes) else urllib.parse.urlencode(data).encode())
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_server_binds_to_localhost_and_refuses_bad_input_without_touching_the_csv(server, study_dir):
    server, base = server
    assert server.server_address[0] == "127.0.0.1"
    study = S.load_study(study_dir)
    token, other_token = list(study["raters"])[:2]
    first, second = study["raters"][token][:2]
    answers = study_dir / S.ANSWERS_FILE

    status, body = _request(f"{base}/api/answer", {"rater": token, "trial": first["id"], "choice": "left"})
    assert status == 200 and json.loads(body)["trial"]["id"] == second["id"]
    before = answers.read_bytes()
    refusals = [
        ({"rater": token, "trial": first["id"], "choice": "left"}, 409, "already answered"),
        ({"rater": "not-a-token", "trial": second["id"], "choice": "left"}, 403, "unknown rater token"),
        ({"rater": token, "trial": second["id"][:-1] + "x", "choice": "left"}, 400, "not one of this rater's trials"),
        ({"rater": token, "trial": study["raters"][other_token][0]["id"], "choice": "left"}, 400, "not one of this rater's"),
        ({"rater": token, "trial": study["raters"][token][3]["id"], "choice": "left"}, 409, "not the current trial"),
        ({"rater": token, "trial": second["id"], "choice": "middle"}, 400, "choice must be 'left' or 'right'"),
        ({"rater": token, "trial": second["id"]}, 400, "missing field(s): choice"),
        ({"rater": token, "trial": second["id"], "choice": "left", "response_ms": "soon"}, 400, "response_ms must be a number"),
        (f"rater={token}&rater={token}&trial={second['id']}&choice=left".encode(), 400, "each field may be given once"),
    ]
    for data, expected_status, message in refusals:
        status, body = _request(f"{base}/api/answer", data)
        assert (status, message in body) == (expected_status, True), (data, status, body)
        assert answers.read_bytes() == before
    assert _request(f"{base}/api/next?rater=nobody")[0] == 403
    assert _request(f"{base}/study?rater=nobody")[0] == 403
    assert _request(f"{base}/images/../study.json")[0] == 404
    assert _request(f"{base}/images/{first['left']}")[0] == 200
    status, body = _request(f"{base}/api/next?rater={token}")
    assert json.loads(body)["trial"]["index"] == 1


def test_cli_score_prints_the_fool_rate(study_dir, capsys):
    from palette.cli import main

    assert main(["study", "score", str(study_dir), "--json", str(study_dir / "score.json")]) == 0
    assert "no scorable answers yet" in capsys.readouterr().out
    assert json.loads((study_dir / "score.json").read_text())["fool_rate"] is None
    assert main(["study", "score", str(study_dir.parent / "nowhere")]) == 2

    study = S.load_study(study_dir)
    log = S.AnswerLog(study, study_dir / S.ANSWERS_FILE)
    _answer_all(log, study, lambda token, trial: trial["real_side"] if trial["kind"] == "catch" else "left")
    assert main(["study", "score", str(study_dir), "--seed", "3", "--json", str(study_dir / "score.json")]) == 0
    printed = capsys.readouterr().out
    assert "cluster bootstrap over 3 raters" in printed and "Wilson, trials pooled as if independent" in printed
    score = json.loads((study_dir / "score.json").read_text())
    assert score == S.score_study(study_dir, seed=3)


# ---------------------------------------------------------------------------------------------
# A rater in a real browser


def test_a_rater_clicks_through_the_study_in_a_browser(chrome, server, study_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, base = server
    study = S.load_study(study_dir)
    token = list(study["raters"])[1]
    trials = study["raters"][token]
    status = lambda: chrome.find_element(By.ID, "status").text  # noqa: E731

    def wait_for(text):
        WebDriverWait(chrome, 15).until(lambda _: text in status())

    chrome.get(f"{base}/study?rater={token}")
    wait_for("Trial 1 of 6")
    clicks = []
    for index, trial in enumerate(trials):
        if index == 3:  # reload mid-study: the page resumes at the first unanswered trial
            chrome.refresh()
            wait_for("Trial 4 of 6")
        left = chrome.find_element(By.ID, "left-image").get_attribute("src")
        assert left.endswith(f"/images/{trial['left']}")  # the page shows this trial's pair
        side = "left" if index % 3 else "right"
        chrome.find_element(By.ID, side).click()
        clicks.append((trial, side))
        wait_for(f"Trial {index + 2} of 6" if index + 1 < len(trials) else "Done: all 6 answers are saved")
    if os.environ.get("PALETTE_STUDY_SCREENSHOT"):
        chrome.get(f"{base}/study?rater={list(study['raters'])[0]}")
        wait_for("Trial 1 of 6")
        chrome.save_screenshot(os.environ["PALETTE_STUDY_SCREENSHOT"])

    with open(study_dir / S.ANSWERS_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["trial"], r["chosen"]) for r in rows] == [(t["id"], side) for t, side in clicks]
    assert all(r["rater"] == token and r["response_ms"] for r in rows)
    catch_right = sum(side == t["real_side"] for t, side in clicks if t["kind"] == "catch")
    fooled = sum(side != t["real_side"] for t, side in clicks if t["kind"] == "model")
    result = S.score_study(study_dir, min_catch_accuracy=0.0)
    assert (result["fooled"], result["model_trials"]) == (fooled, 4)
    assert result["catch_accuracy"] == pytest.approx(100 * catch_right / 2)
