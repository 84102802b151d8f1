"""The paper's human evaluation: a two-alternative forced-choice study, scored as a fool rate.

Each trial shows a real image and another image of the same input side by side (sides drawn from a
seeded generator) and asks which one is the real photograph (docs/paper.md, Evaluation protocol:
"two-alternative forced choice, reported as fool rate"). In a model trial the other image is the
model's output for that input; in a catch trial it is the real image visibly degraded (blurred,
blocky and noisy), so a rater who is not looking fails them. The fool rate is the fraction of model
trials where the rater picked the model's output (50 % = indistinguishable; the paper reports
47.8 % for colorization), with a 95 % interval from resampling raters (a cluster bootstrap: each
rater answers many trials, so trials are not independent; `score_study` says why).

Three parts, torch-free:
- `build_study(set_dir, samples_dir, out_dir, ...)` writes `out_dir/study.json` (raters with their
  tokens and trials) and `out_dir/images/` (opaque names, so a URL does not tell which is real).
- `serve(study_dir)` runs a small standard-library web server (127.0.0.1 by default). Raters open
  `/study?rater=TOKEN`; every answer is appended to `study_dir/answers.csv` with an fsync before
  the reply, so a crash or reload loses nothing, and a reload resumes at the first unanswered
  trial. Bad input (an unknown token, a trial id not this rater's or not the current one, a second
  answer to a trial, a malformed request) gets an HTTP 4xx with a one-line reason and is never
  written.
- `score_study(study_dir)` turns the answers into the fool rate and its interval over raters.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import shutil
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from palette.files import atomic_write

STUDY_FILE = "study.json"
ANSWERS_FILE = "answers.csv"
ANSWER_COLUMNS = ["study_id", "time_utc", "rater", "trial", "index", "kind", "name", "real_side", "chosen",
                  "picked_real", "response_ms"]
# The paper's fool rates by evaluation task (docs/paper.md, Target numbers).
PAPER_FOOL_RATES = {"colorization": 47.8}
QUESTION = "Which image is a real photograph?"
# Resamples of the interval over raters: milliseconds for tens of raters, and enough that its ends
# move by only about 1/40 of the fool rate's standard error from one seed to another.
BOOTSTRAP_RESAMPLES = 10_000


class StudyError(ValueError):
    """A study folder, its answers or a request that cannot be used; the message says why."""


# ---------------------------------------------------------------------------------------------
# Building a study


def degrade_for_catch(image: np.ndarray) -> np.ndarray:
    """An obviously worse version of a real image [H, W, 3] uint8: 4x4 blocks averaged (blurred and
    blocky) plus strong noise from a fixed generator. Catch trials check that raters look."""
    height, width = image.shape[:2]
    block = 4
    padded = np.pad(image.astype(np.float32), ((0, -height % block), (0, -width % block), (0, 0)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block, 3).mean(axis=(1, 3))
    coarse = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:height, :width]
    noise = np.random.default_rng(0).normal(0.0, 40.0, coarse.shape)
    return np.clip(coarse + noise, 0, 255).astype(np.uint8)


def _opaque_name(seed: int, kind: str, name: str) -> str:
    return hashlib.sha256(f"palette-study/{seed}/{kind}/{name}".encode()).hexdigest()[:20] + ".png"


def build_study(
    set_dir: str | Path,
    samples_dir: str | Path,
    out_dir: str | Path,
    *,
    raters: int = 10,
    trials_per_rater: int = 50,
    catch_trials: int = 5,
    seed: int = 0,
    sample_index: int = 0,
    label: str = "",
    task: str = "",
) -> Path:
    """Write a study from an evaluation set (`SET/target/NAME.png`, the real images) and a model's
    samples (`SAMPLES/sample_K/NAME.png`) into `out_dir` (study.json and images/).

    Each rater gets `trials_per_rater` trials in a seeded random order: `catch_trials` catch trials
    and the rest model trials, whose inputs cycle through the evaluation set in a per-rater
    seeded order (every input before any repeats). Tokens and trial ids are drawn from the same
    seed, so the build is reproducible.
    """
    from palette.imageio import list_images, load_image, save_image

    set_dir, samples_dir, out_dir = Path(set_dir), Path(samples_dir), Path(out_dir)
    model_dir = samples_dir / f"sample_{sample_index}"
    names = [p.stem for p in list_images(set_dir / "target") if (model_dir / f"{p.stem}.png").exists()]
    if not names:
        raise StudyError(f"no image of {set_dir / 'target'} has a sample in {model_dir}")
    if not 0 <= catch_trials < trials_per_rater:
        raise StudyError(f"catch_trials ({catch_trials}) must be at least 0 and below trials_per_rater ({trials_per_rater})")
    images_dir = out_dir / "images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    images_dir.mkdir(parents=True)
    files = {}
    for name in names:
        real = load_image(set_dir / "target" / f"{name}.png")
        model = load_image(model_dir / f"{name}.png")
        if model.shape != real.shape:
            raise StudyError(f"sample {model_dir / (name + '.png')} is {model.shape[:2]} but its target is {real.shape[:2]}")
        for kind, image in (("real", real), ("model", model), ("catch", degrade_for_catch(real))):
            files[kind, name] = _opaque_name(seed, kind, name)
            save_image(images_dir / files[kind, name], image)

    rng = np.random.default_rng([seed, 2022])
    used_ids: set[str] = set()

    def new_id() -> str:
        while True:
            value = rng.bytes(8).hex()
            if value not in used_ids:
                used_ids.add(value)
                return value

    raters_table = {}
    for _ in range(raters):
        token = rng.bytes(12).hex()
        order = rng.permutation(len(names))
        model_names = [names[order[i % len(names)]] for i in range(trials_per_rater - catch_trials)]
        catch_names = [names[i] for i in rng.choice(len(names), catch_trials, replace=catch_trials > len(names))]
        kinds = [("model", n) for n in model_names] + [("catch", n) for n in catch_names]
        trials = []
        for position in rng.permutation(len(kinds)):
            kind, name = kinds[position]
            real_side = "left" if rng.random() < 0.5 else "right"
            other = files[kind, name]
            left, right = (files["real", name], other) if real_side == "left" else (other, files["real", name])
            trials.append({"id": new_id(), "kind": kind, "name": name, "real_side": real_side,
                           "left": left, "right": right})
        raters_table[token] = trials
    study = {"format": 1, "label": label, "task": task, "seed": seed, "question": QUESTION,
             "trials_per_rater": trials_per_rater, "catch_trials": catch_trials,
             "paper_fool_rate": PAPER_FOOL_RATES.get(task), "raters": raters_table,
             # new samples (a retrained model) make a new study, whose id old answers do not match
             "images_sha256": hashlib.sha256(b"".join((images_dir / f).read_bytes() for f in sorted(files.values()))).hexdigest()}
    study["study_id"] = hashlib.sha256(json.dumps(study, sort_keys=True).encode()).hexdigest()[:16]
    with atomic_write(out_dir / STUDY_FILE) as handle:
        handle.write(json.dumps(study, indent=1).encode())
    return out_dir / STUDY_FILE


def study_folder(path: str | Path) -> Path:
    """The study folder itself, or the `study/` folder of a workflow's results folder."""
    path = Path(path)
    return path / "study" if not (path / STUDY_FILE).exists() and (path / "study" / STUDY_FILE).exists() else path


def load_study(study_dir: str | Path) -> dict:
    path = study_folder(study_dir) / STUDY_FILE
    try:
        study = json.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{path}: no study here (build one with `palette study build`)") from None
    except json.JSONDecodeError as error:
        raise StudyError(f"{path}: not a study file ({error})") from None
    if not isinstance(study, dict) or not {"study_id", "raters"} <= set(study):
        raise StudyError(f"{path}: not a study file (no study_id or raters)")
    return study


# ---------------------------------------------------------------------------------------------
# Answers: one CSV, appended and fsynced per answer


def read_answers(study: dict, path: str | Path) -> tuple[list[dict], int]:
    """The answer rows of `path` and the length in bytes of its complete lines (a last line cut by a
    crash is left out). Raises StudyError for a file of another study or a row that is not a
    trial of its rater, naming the line."""
    path = Path(path)
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    rows = list(csv.DictReader(io.StringIO(data[:complete].decode("utf-8", "replace"))))
    trials = {token: {t["id"] for t in trial_list} for token, trial_list in study["raters"].items()}
    seen = set()
    for number, row in enumerate(rows, start=2):
        if row.get("study_id") != study["study_id"]:
            raise StudyError(f"{path} line {number}: an answer of study {row.get('study_id')!r}, not of this "
                             f"study ({study['study_id']}); move the file away to start this study")
        if row.get("trial") not in trials.get(row.get("rater"), ()):
            raise StudyError(f"{path} line {number}: trial {row.get('trial')!r} is not a trial of rater {row.get('rater')!r}")
        if (row["rater"], row["trial"]) in seen:
            raise StudyError(f"{path} line {number}: a second answer to trial {row['trial']!r}")
        seen.add((row["rater"], row["trial"]))
    return rows, complete


class AnswerLog:
    """The answers CSV of one study, safe against crashes, reloads and concurrent raters.

    Opening it reads the answers already there (so a restarted server resumes every rater), drops
    a last line cut short by a crash (that answer was never acknowledged, so the page sends it
    again) and refuses a file that belongs to another study. `record` checks the answer, then
    appends its row in one write and fsyncs before returning.
    """

    def __init__(self, study: dict, path: str | Path) -> None:
        self.study, self.path = study, Path(path)
        self.lock = threading.Lock()
        self.trials = {token: {t["id"]: (i, t) for i, t in enumerate(trials)} for token, trials in study["raters"].items()}
        self.answered: dict[str, set[str]] = {token: set() for token in study["raters"]}
        self._recover()

    def _recover(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(ANSWER_COLUMNS)
                handle.flush()
                os.fsync(handle.fileno())
            return
        rows, complete_bytes = read_answers(self.study, self.path)
        if complete_bytes < self.path.stat().st_size:  # a row cut by a crash: never acknowledged, so drop it
            with open(self.path, "r+b") as handle:
                handle.truncate(complete_bytes)
                os.fsync(handle.fileno())
        for row in rows:
            self.answered[row["rater"]].add(row["trial"])

    def next_trial(self, token: str) -> tuple[int, dict] | None:
        """(index, trial) of the rater's first unanswered trial, None when done."""
        self._check_token(token)
        for index, trial in enumerate(self.study["raters"][token]):
            if trial["id"] not in self.answered[token]:
                return index, trial
        return None

    def _check_token(self, token: str) -> None:
        if token not in self.trials:
            raise RequestRefused(HTTPStatus.FORBIDDEN, "unknown rater token: use the link you were given")

    def record(self, token: str, trial_id: str, chosen: str, response_ms: float | None = None) -> dict:
        """Check and store one answer; returns its row. Raises RequestRefused for bad input."""
        with self.lock:
            self._check_token(token)
            if chosen not in ("left", "right"):
                raise RequestRefused(HTTPStatus.BAD_REQUEST, f"choice must be 'left' or 'right', got {chosen!r}")
            if trial_id not in self.trials[token]:
                raise RequestRefused(HTTPStatus.BAD_REQUEST, f"trial {trial_id!r} is not one of this rater's trials")
            if trial_id in self.answered[token]:
                raise RequestRefused(HTTPStatus.CONFLICT, f"trial {trial_id!r} was already answered; answers are final")
            index, trial = self.trials[token][trial_id]
            current = self.next_trial(token)
            if current is None or current[1]["id"] != trial_id:
                raise RequestRefused(HTTPStatus.CONFLICT, f"trial {trial_id!r} is not the current trial; reload the page")
            row = {"study_id": self.study["study_id"], "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "rater": token, "trial": trial_id, "index": index, "kind": trial["kind"], "name": trial["name"],
                   "real_side": trial["real_side"], "chosen": chosen, "picked_real": int(chosen == trial["real_side"]),
                   "response_ms": "" if response_ms is None else f"{float(response_ms):.0f}"}
            line = io.StringIO()
            csv.DictWriter(line, fieldnames=ANSWER_COLUMNS).writerow(row)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(descriptor, line.getvalue().encode())  # one write: a row is whole or (after a crash) cut and dropped
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            self.answered[token].add(trial_id)
            return row


class RequestRefused(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# ---------------------------------------------------------------------------------------------
# The web server (standard library only)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Image study</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 760px; text-align: center; color: #222; }}
.pair {{ display: flex; gap: 24px; justify-content: center; margin: 1.2em 0; }}
.pair button {{ border: 3px solid #ccc; background: #fff; padding: 6px; cursor: pointer; border-radius: 6px; }}
.pair button:hover {{ border-color: #2a6edb; }}
.pair img {{ width: 300px; height: 300px; image-rendering: pixelated; display: block; }}
#status {{ color: #666; }} #error {{ color: #b00; }}
</style></head>
<body>
<h1>{question}</h1>
<p id="status">Loading&hellip;</p>
<div class="pair" id="pair" hidden>
  <button id="left" type="button" aria-label="left image"><img id="left-image" alt="left image"></button>
  <button id="right" type="button" aria-label="right image"><img id="right-image" alt="right image"></button>
</div>
<p>Click the image you believe is the real photograph. Each answer is saved at once; you may close
the page and come back with the same link.</p>
<p id="error"></p>
<script>
const rater = {rater};
let trial = null, shownAt = 0, busy = false;
function show(data) {{
  const status = document.getElementById("status"), pair = document.getElementById("pair");
  if (data.done) {{ trial = null; pair.hidden = true;
    status.textContent = "Done: all " + data.total + " answers are saved. Thank you!"; return; }}
  trial = data.trial;
  document.getElementById("left-image").src = trial.left;
  document.getElementById("right-image").src = trial.right;
  status.textContent = "Trial " + (trial.index + 1) + " of " + data.total;
  pair.hidden = false; shownAt = performance.now();
}}
async function call(url, options) {{
  const response = await fetch(url, options);
  const text = await response.text();
  if (!response.ok) throw new Error(text);
  return JSON.parse(text);
}}
async function load() {{
  try {{ show(await call("/api/next?rater=" + encodeURIComponent(rater))); }}
  catch (e) {{ document.getElementById("error").textContent = e.message; }}
}}
async function answer(side) {{
  if (!trial || busy) return;
  busy = true;
  const body = new URLSearchParams({{rater: rater, trial: trial.id, choice: side,
                                     response_ms: String(Math.round(performance.now() - shownAt))}});
  try {{ show(await call("/api/answer", {{method: "POST", body: body}})); document.getElementById("error").textContent = ""; }}
  catch (e) {{ document.getElementById("error").textContent = e.message; await load(); }}
  finally {{ busy = false; }}
}}
document.getElementById("left").onclick = () => answer("left");
document.getElementById("right").onclick = () => answer("right");
load();
</script>
</body></html>
"""

LANDING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Image study</title></head>
<body style="font-family: sans-serif; margin: 2em auto; max-width: 640px">
<h1>Image study</h1><form action="/study" method="get"><label>Your rater token:
<input name="rater" size="30" autofocus></label> <button type="submit">Start</button></form></body></html>
"""


def make_handler(study: dict, log: AnswerLog, images_dir: Path):
    image_names = {t[side] for trials in study["raters"].values() for t in trials for side in ("left", "right")}
    total = {token: len(trials) for token, trials in study["raters"].items()}

    class StudyHandler(BaseHTTPRequestHandler):
        server_version = "PaletteStudy/1"

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _text(self, status: int, message: str) -> None:
            self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

        def _next(self, token: str) -> None:
            current = log.next_trial(token)
            if current is None:
                payload = {"done": True, "total": total[token]}
            else:
                index, trial = current
                payload = {"done": False, "total": total[token], "trial": {
                    "id": trial["id"], "index": index, "left": f"/images/{trial['left']}", "right": f"/images/{trial['right']}"}}
            self._send(HTTPStatus.OK, json.dumps(payload).encode(), "application/json")

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            try:
                if url.path == "/":
                    self._send(HTTPStatus.OK, LANDING.encode(), "text/html; charset=utf-8")
                elif url.path == "/study":
                    token = query.get("rater", [""])[0]
                    log._check_token(token)
                    page = PAGE.format(question=html.escape(study.get("question", QUESTION)), rater=json.dumps(token))
                    self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
                elif url.path == "/api/next":
                    self._next(query.get("rater", [""])[0])
                elif url.path.startswith("/images/") and url.path[len("/images/"):] in image_names:
                    self._send(HTTPStatus.OK, (images_dir / url.path[len("/images/"):]).read_bytes(), "image/png")
                else:
                    self._text(HTTPStatus.NOT_FOUND, f"not found: {url.path}")
            except RequestRefused as refused:
                self._text(refused.status, refused.message)

        def do_POST(self) -> None:
            url = urlparse(self.path)
            try:
                if url.path != "/api/answer":
                    raise RequestRefused(HTTPStatus.NOT_FOUND, f"not found: {url.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= 4096:
                    raise RequestRefused(HTTPStatus.BAD_REQUEST, "an answer is a small form: rater, trial, choice")
                form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"), keep_blank_values=True)
                if any(len(values) != 1 for values in form.values()):
                    raise RequestRefused(HTTPStatus.BAD_REQUEST, "each field may be given once")
                fields = {key: values[0] for key, values in form.items()}
                missing = [key for key in ("rater", "trial", "choice") if key not in fields]
                if missing:
                    raise RequestRefused(HTTPStatus.BAD_REQUEST, f"missing field(s): {', '.join(missing)}")
                response_ms = fields.get("response_ms") or None
                try:
                    response_ms = None if response_ms is None else float(response_ms)
                except ValueError:
                    raise RequestRefused(HTTPStatus.BAD_REQUEST, f"response_ms must be a number, got {response_ms!r}") from None
                log.record(fields["rater"], fields["trial"], fields["choice"], response_ms)
                self._next(fields["rater"])
            except RequestRefused as refused:
                self._text(refused.status, refused.message)

    return StudyHandler


def make_server(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
                answers: str | Path | None = None) -> ThreadingHTTPServer:
    """A server for the study in `study_dir` (answers in `study_dir/answers.csv` unless given);
    port 0 picks a free one (`server.server_address`)."""
    study_dir = study_folder(study_dir)
    study = load_study(study_dir)
    log = AnswerLog(study, answers or study_dir / ANSWERS_FILE)
    server = ThreadingHTTPServer((host, port), make_handler(study, log, study_dir / "images"))
    server.answer_log = log
    return server


def rater_links(study: dict, base_url: str) -> list[str]:
    return [f"{base_url}/study?rater={token}" for token in study["raters"]]


# ---------------------------------------------------------------------------------------------
# Scoring


def binomial_interval(successes: int, trials: int, confidence: float = 0.95, method: str = "wilson") -> tuple[float, float]:
    """Two-sided confidence interval of a binomial proportion (scipy: 'wilson' or 'exact' = Clopper-Pearson)."""
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method=method)
    return float(interval.low), float(interval.high)


def rater_bootstrap_interval(fooled_per_rater, trials_per_rater, confidence: float = 0.95,
                             resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """Percentile interval of the pooled fool rate (a fraction) from a cluster bootstrap over raters,
    or None with fewer than 2 raters (one rater says nothing about how raters vary).

    Each resample draws as many raters as there are, with replacement, keeping each drawn rater's
    trials together, and recomputes the pooled rate (fooled over model trials of the drawn raters,
    the same ratio as the fool rate itself); the interval is the central `confidence` share of the
    resampled rates. With few raters (under about 10) percentile intervals run somewhat narrow.
    """
    fooled = np.asarray(fooled_per_rater, np.float64)
    trials = np.asarray(trials_per_rater, np.float64)
    if len(trials) < 2:
        return None
    if (trials <= 0).any():
        raise ValueError("every rater in the bootstrap needs at least one model trial")
    rng = np.random.default_rng(seed)
    # times each rater is drawn in each resample: the same as drawing raters with replacement
    draws = rng.multinomial(len(trials), np.full(len(trials), 1.0 / len(trials)), size=resamples)
    rates = (draws @ fooled) / (draws @ trials)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(rates, [tail, 1.0 - tail])
    return float(low), float(high)


def score_study(study_dir: str | Path, answers: str | Path | None = None, min_catch_accuracy: float = 1.0,
                method: str = "wilson", resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """The fool rate (% of model trials where the model's output was picked as real) with its 95 %
    interval, over raters who answered at least one catch trial and got at least
    `min_catch_accuracy` of them right (the others are counted and named as excluded).

    The interval (`ci_low`, `ci_high`) comes from resampling raters (`rater_bootstrap_interval`,
    `resamples` draws seeded by `seed`), not trials: every rater answers many trials, and raters
    differ (one is fooled often, another hardly ever), so trials of one rater are correlated and an
    interval that pools them as independent is too narrow, the more so the more trials each rater
    answers. Resampling raters keeps that correlation and needs no model of it; with independent
    trials it gives about the binomial interval. It is never reported narrower than the pooled
    binomial interval (`pooled_ci_low`, `pooled_ci_high`; `method` 'wilson' or 'exact', kept
    beside it): a rater's trials share one eye and one criterion, so they are no less variable
    than independent trials, and a narrower bootstrap only shows how few raters there are to see
    the spread (with every rater at 0 %, resampling them sees none at all); `interval` then says
    it was widened. Fewer than 2 raters: no interval, and `interval` says so.
    """
    study_dir = study_folder(study_dir)
    study = load_study(study_dir)
    log_path = Path(answers) if answers else study_dir / ANSWERS_FILE
    rows = read_answers(study, log_path)[0] if log_path.exists() else []
    by_rater: dict[str, list[dict]] = {}
    for row in rows:
        by_rater.setdefault(row["rater"], []).append(row)
    included, excluded = [], []
    fooled_per_rater, trials_per_rater = [], []  # included raters with at least one model trial
    catch_right = catch_total = 0
    for token, answers_of in by_rater.items():
        catches = [r for r in answers_of if r["kind"] == "catch"]
        right = sum(int(r["picked_real"]) for r in catches)
        if not catches or right < min_catch_accuracy * len(catches):
            excluded.append({"rater": token[:8], "answers": len(answers_of), "catch_right": right, "catch_trials": len(catches)})
            continue
        included.append(token)
        catch_right, catch_total = catch_right + right, catch_total + len(catches)
        model_rows = [r for r in answers_of if r["kind"] == "model"]
        if model_rows:
            fooled_per_rater.append(sum(1 - int(r["picked_real"]) for r in model_rows))
            trials_per_rater.append(len(model_rows))
    fooled, model_trials, interval_raters = sum(fooled_per_rater), sum(trials_per_rater), len(trials_per_rater)
    pooled = binomial_interval(fooled, model_trials, method=method) if model_trials else None
    by_raters = rater_bootstrap_interval(fooled_per_rater, trials_per_rater, resamples=resamples, seed=seed)
    if by_raters is not None:
        interval = f"cluster bootstrap over {interval_raters} raters (95 %, {resamples} resamples, percentile)"
        if by_raters[0] > pooled[0] or by_raters[1] < pooled[1]:
            by_raters = (min(by_raters[0], pooled[0]), max(by_raters[1], pooled[1]))
            interval += ", widened to contain the pooled binomial interval"
    else:
        interval = f"fewer than 2 raters ({interval_raters} with model trials): an interval over raters needs 2 or more"
    return {
        "study_id": study["study_id"], "label": study.get("label", ""), "task": study.get("task", ""),
        "paper_fool_rate": study.get("paper_fool_rate"),
        "fool_rate": 100.0 * fooled / model_trials if model_trials else None,
        "ci_low": None if by_raters is None else 100.0 * by_raters[0],
        "ci_high": None if by_raters is None else 100.0 * by_raters[1],
        "interval": interval, "interval_method": None if by_raters is None else "cluster_bootstrap",
        "interval_raters": interval_raters, "bootstrap_resamples": resamples, "bootstrap_seed": seed,
        "pooled_ci_low": None if pooled is None else 100.0 * pooled[0],
        "pooled_ci_high": None if pooled is None else 100.0 * pooled[1],
        "pooled_interval": (f"binomial 95 %, {'Wilson' if method == 'wilson' else 'Clopper-Pearson'}, trials pooled "
                            "as if independent (too narrow when raters differ)"),
        "fooled": fooled, "model_trials": model_trials, "answers": len(rows),
        "raters": len(study["raters"]), "raters_answered": len(by_rater), "raters_included": len(included),
        "raters_excluded": excluded, "catch_accuracy": 100.0 * catch_right / catch_total if catch_total else None,
        "min_catch_accuracy": min_catch_accuracy,
    }
