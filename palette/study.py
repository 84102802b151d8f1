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
  written. One server per study folder: it holds `serve.lock` (flock, with its pid) for its life,
  and checks before it starts that the answers file is writable and every study image decodes.
- `score_study(study_dir)` turns the answers into the fool rate and its interval over raters,
  recomputing each answer's trial kind and whether it picked the real image from study.json (the
  CSV's own `kind`/`picked_real` columns are only compared with it: a person could edit them).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import html
import io
import json
import math
import os
import shutil
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from palette.errors import debugging
from palette.files import atomic_write

STUDY_FILE = "study.json"
ANSWERS_FILE = "answers.csv"
LOCK_FILE = "serve.lock"  # held (flock) by the one server of a study folder, with its pid
ANSWER_COLUMNS = ["study_id", "time_utc", "rater", "trial", "index", "kind", "name", "real_side", "chosen",
                  "picked_real", "response_ms"]
# The paper's fool rates by evaluation task (docs/paper.md, Target numbers).
PAPER_FOOL_RATES = {"colorization": 47.8}
QUESTION = "Which image is a real photograph?"
# Resamples of the interval over raters: milliseconds for tens of raters, and enough that its ends
# move by only about 1/40 of the fool rate's standard error from one seed to another.
BOOTSTRAP_RESAMPLES = 10_000
# A response time is milliseconds from showing the pair to the click: a week at most (a page left open).
MAX_RESPONSE_MS = 7 * 24 * 3600 * 1000
# An answer is a small form (rater, trial, choice, response_ms): a longer body is refused unread.
MAX_ANSWER_BYTES = 4096
# Seconds a connection may stall (a request line, headers or a body that stops coming) before the
# server gives up on it (408 for a body); other raters are served meanwhile (a thread per connection).
REQUEST_TIMEOUT_S = 30.0


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
    seed, so the build is reproducible. Refused while a server serves `out_dir` (its serve.lock):
    the images would change under the raters.
    """
    settings = dict(raters=raters, trials_per_rater=trials_per_rater, catch_trials=catch_trials, seed=seed,
                    sample_index=sample_index, label=label, task=task)
    lock = take_lock(Path(out_dir) / LOCK_FILE) if Path(out_dir).is_dir() else None  # none serves a new folder
    try:
        return _write_study(Path(set_dir), Path(samples_dir), Path(out_dir), **settings)
    finally:
        if lock is not None:
            release_lock(lock)


def _write_study(set_dir: Path, samples_dir: Path, out_dir: Path, *, raters: int, trials_per_rater: int,
                 catch_trials: int, seed: int, sample_index: int, label: str, task: str) -> Path:
    from palette.imageio import list_images, load_image, save_image

    model_dir = samples_dir / f"sample_{sample_index}"
    names = [p.stem for p in list_images(set_dir / "target") if (model_dir / f"{p.stem}.png").exists()]
    if not names:
        raise StudyError(f"no image of {set_dir / 'target'} has a sample in {model_dir}")
    if raters < 1:
        raise StudyError(f"raters ({raters}) must be at least 1")
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
        study = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{path}: no study here (build one with `palette study build`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StudyError(f"{path}: not a study file ({error})") from None
    if not isinstance(study, dict) or not {"study_id", "raters"} <= set(study):
        raise StudyError(f"{path}: not a study file (no study_id or raters)")
    problem = _study_problem(study)
    if problem:
        raise StudyError(f"{path}: not a usable study file ({problem}); rebuild it with `palette study build`")
    return study


def _study_problem(study: dict) -> str | None:
    """What makes a study record unusable (the server and the score rely on its shape), or None."""
    if not isinstance(study["study_id"], str) or not isinstance(study["raters"], dict) or not study["raters"]:
        return "study_id must be text and raters a mapping of token to trials"
    for token, trials in study["raters"].items():
        if not isinstance(trials, list) or not trials:
            return f"rater {token[:8]!r} has no list of trials"
        for number, trial in enumerate(trials):
            where = f"trial {number} of rater {token[:8]!r}"
            if not isinstance(trial, dict) or not all(isinstance(trial.get(key), str) and trial[key]
                                                      for key in ("id", "name", "left", "right")):
                return f"{where} needs id, name, left and right"
            if trial.get("kind") not in ("model", "catch") or trial.get("real_side") not in ("left", "right"):
                return f"{where}: kind must be model or catch, and real_side left or right"
            # the server sends images/NAME for these names: plain file names only
            if any(os.path.basename(trial[side]) != trial[side] or trial[side].startswith(".") for side in ("left", "right")):
                return f"{where}: an image name that is not a plain file name"
        if len({trial["id"] for trial in trials}) != len(trials):
            return f"rater {token[:8]!r} has a trial id twice"
    return None


def study_images(study: dict) -> set[str]:
    """The file names (in the study's images/ folder) that its trials show."""
    return {t[side] for trials in study["raters"].values() for t in trials for side in ("left", "right")}


def check_study_images(study: dict, images_dir: Path) -> None:
    """Refuse a study whose images/ folder lacks an image a trial shows, or holds one that does not
    decode, naming the file: before the server starts, not as a broken picture in front of a rater."""
    from palette.imageio import load_image

    for name in sorted(study_images(study)):
        load_image(images_dir / name)  # ImageLoadError (a ValueError) names the file and why


# ---------------------------------------------------------------------------------------------
# Answers: one CSV, appended and fsynced per answer


def read_answers(study: dict, path: str | Path) -> tuple[list[dict], int]:
    """The answer rows of `path` (each with its `line` number) and the length in bytes of its complete
    lines (a last line cut by a crash is left out). Raises StudyError naming the file and line for a
    file that is not an answers CSV (binary, not UTF-8, other columns, a row of another length), a
    file of another study, a row that is not a trial of its rater or answers one twice, and a choice
    or response time that the server would not have stored."""
    path = Path(path)
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    if complete == 0 and ",".join(ANSWER_COLUMNS).encode().startswith(data.rstrip(b"\r")):
        return [], 0  # empty, or a header cut by a crash: no answers yet
    bad = data.find(b"\0", 0, complete)
    try:
        text = data[:complete].decode("utf-8")
    except UnicodeDecodeError as error:
        bad = error.start if bad < 0 else min(bad, error.start)
    if bad >= 0:
        line = data.count(b"\n", 0, bad) + 1
        raise StudyError(f"{path} line {line}: not an answers file (binary data, not UTF-8 CSV text)")
    trials = {token: {t["id"] for t in trial_list} for token, trial_list in study["raters"].items()}
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, seen = [], set()
    try:
        if next(reader, []) != ANSWER_COLUMNS:
            raise StudyError(f"{path} line 1: not an answers file (its columns must be {','.join(ANSWER_COLUMNS)})")
        for fields in reader:
            number = reader.line_num
            if len(fields) != len(ANSWER_COLUMNS):
                raise StudyError(f"{path} line {number}: {len(fields)} fields, not the {len(ANSWER_COLUMNS)} columns")
            row = dict(zip(ANSWER_COLUMNS, fields))
            if row["study_id"] != study["study_id"]:
                raise StudyError(f"{path} line {number}: an answer of study {row['study_id']!r}, not of this "
                                 f"study ({study['study_id']}); move the file away to start this study")
            if row["trial"] not in trials.get(row["rater"], ()):
                raise StudyError(f"{path} line {number}: trial {row['trial']!r} is not a trial of rater {row['rater']!r}")
            if (row["rater"], row["trial"]) in seen:
                raise StudyError(f"{path} line {number}: a second answer to trial {row['trial']!r}")
            if row["chosen"] not in ("left", "right"):
                raise StudyError(f"{path} line {number}: chosen must be left or right, got {row['chosen']!r}")
            problem = response_time_problem(row["response_ms"]) if row["response_ms"] else None
            if problem:
                raise StudyError(f"{path} line {number}: response_ms {problem}")
            seen.add((row["rater"], row["trial"]))
            rows.append({**row, "line": number})
    except csv.Error as error:  # e.g. a field over the csv module's size limit
        raise StudyError(f"{path} line {reader.line_num}: not an answers file ({error})") from None
    return rows, complete


def response_time_problem(value) -> str | None:
    """Why `value` is not a response time to store (finite milliseconds, 0..MAX_RESPONSE_MS), or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"must be a number, got {value!r}"
    if not (math.isfinite(number) and 0 <= number <= MAX_RESPONSE_MS):
        return f"must be milliseconds from 0 to {MAX_RESPONSE_MS}, got {value!r}"
    return None


class AnswerLog:
    """The answers CSV of one study, safe against crashes, reloads and concurrent raters.

    Opening it checks that the file can be written (or created), reads the answers already there
    (so a restarted server resumes every rater), drops a last line cut short by a crash (that answer
    was never acknowledged, so the page sends it again) and refuses a file that belongs to another
    study. `record` checks the answer, then appends its row in one write and fsyncs before
    returning; a write that fails is undone and refused (HTTP 503), so the page can send it again.
    """

    def __init__(self, study: dict, path: str | Path, exclusive: bool = False) -> None:
        """`exclusive`: hold a flock on the file until `close()`, refusing a second exclusive log of
        it (a server of another copy of the study folder, whose serve.lock is another file)."""
        self.study, self.path, self.exclusive = study, Path(path), exclusive
        self.lock = threading.Lock()
        self._held: int | None = None
        self.trials = {token: {t["id"]: (i, t) for i, t in enumerate(trials)} for token, trials in study["raters"].items()}
        self.answered: dict[str, set[str]] = {token: set() for token in study["raters"]}
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    def _recover(self) -> None:
        try:  # refused now, in one line, rather than as a failed write with every answer
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise StudyError(f"{self.path}: cannot write answers there ({error.strerror or error})") from None
        if not self.exclusive:
            os.close(descriptor)
        else:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                raise StudyError(f"{self.path}: another `palette study serve` is writing this answers file; "
                                 "one server at a time") from None
            self._held = descriptor
        rows, complete_bytes = read_answers(self.study, self.path)
        if complete_bytes == 0 or complete_bytes < self.path.stat().st_size:
            # no header yet (a new file, or one cut by a crash), or a row cut by a crash: that answer
            # was never acknowledged, so drop it
            with open(self.path, "r+b") as handle:
                handle.truncate(complete_bytes)
                if complete_bytes == 0:
                    handle.write((",".join(ANSWER_COLUMNS) + "\r\n").encode())  # as csv.writer ends lines
                os.fsync(handle.fileno())
        for row in rows:
            self.answered[row["rater"]].add(row["trial"])

    def close(self) -> None:
        """Release the flock of an exclusive log."""
        if self._held is not None:
            os.close(self._held)
            self._held = None

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
            problem = None if response_ms is None else response_time_problem(response_ms)
            if problem:
                raise RequestRefused(HTTPStatus.BAD_REQUEST, f"response_ms {problem}")
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
            self._append(line.getvalue().encode())
            self.answered[token].add(trial_id)
            return row

    def _append(self, data: bytes) -> None:
        """Append one row in one write (a crash leaves it whole or cut, and a cut one is dropped),
        fsynced; a failed or partial write (disk full, the file made read-only) is cut off again,
        so no half row sits between later ones, and refused with 503."""
        descriptor = None
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            size = os.fstat(descriptor).st_size
            try:
                if os.write(descriptor, data) != len(data):
                    raise OSError("only part of the row was written (disk full?)")
                os.fsync(descriptor)
            except OSError:
                os.ftruncate(descriptor, size)
                raise
        except OSError as error:
            raise RequestRefused(HTTPStatus.SERVICE_UNAVAILABLE, "the answer was not saved (a server error); try again "
                                 "in a moment", log=f"the answer was not saved: {self.path}: {error.strerror or error}") from None
        finally:
            if descriptor is not None:
                os.close(descriptor)


class RequestRefused(Exception):
    """A request answered with `status` and the one-line `message`; `log`, for the server's own
    faults, is the line for its log (naming server paths, which the rater's reply does not)."""

    def __init__(self, status: HTTPStatus, message: str, log: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.log = status, message, log


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


def make_handler(study: dict, log: AnswerLog, images_dir: Path, request_timeout: float = REQUEST_TIMEOUT_S):
    image_names = study_images(study)
    total = {token: len(trials) for token, trials in study["raters"].items()}

    class StudyHandler(BaseHTTPRequestHandler):
        server_version = "PaletteStudy/1"
        timeout = request_timeout  # on the connection's socket: a stalled client cannot hold a thread forever

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _text(self, status: int, message: str) -> None:
            self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

        def _refuse(self, refused: RequestRefused) -> None:
            if refused.status >= 500:  # the server's fault, not the rater's: one line in the log
                self.log_error("%s", refused.log or refused.message)
            self._text(refused.status, refused.message)

        def _next(self, token: str) -> None:
            current = log.next_trial(token)
            if current is None:
                payload = {"done": True, "total": total[token]}
            else:
                index, trial = current
                payload = {"done": False, "total": total[token], "trial": {
                    "id": trial["id"], "index": index, "left": f"/images/{trial['left']}", "right": f"/images/{trial['right']}"}}
            self._send(HTTPStatus.OK, json.dumps(payload).encode(), "application/json")

        def _image(self, name: str) -> bytes:
            try:
                return (images_dir / name).read_bytes()
            except OSError as error:  # deleted or unreadable since the start-up check
                raise RequestRefused(HTTPStatus.INTERNAL_SERVER_ERROR, f"study image {name} cannot be read on the "
                                     "server; tell the person running the study",
                                     log=f"study image {images_dir / name} cannot be read ({error.strerror or error})") from None

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
                    self._send(HTTPStatus.OK, self._image(url.path[len("/images/"):]), "image/png")
                else:
                    self._text(HTTPStatus.NOT_FOUND, f"not found: {url.path}")
            except RequestRefused as refused:
                self._refuse(refused)

        def _body(self) -> bytes:
            """The request's body, refused unread when its Content-Length is missing, not a whole
            number or too long for an answer; 408 when it stops coming before its length."""
            text = self.headers.get("Content-Length")
            if text is None:
                raise RequestRefused(HTTPStatus.LENGTH_REQUIRED, "an answer needs a Content-Length")
            text = text.strip()
            if not (text.isascii() and text.isdigit()):  # int() would take "-1", " +1_0 "
                raise RequestRefused(HTTPStatus.BAD_REQUEST, f"Content-Length must be a whole number of bytes, got {text[:20]!r}")
            length = int(text)
            if length > MAX_ANSWER_BYTES:
                raise RequestRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                     f"an answer is a small form (at most {MAX_ANSWER_BYTES} bytes), not {length} bytes")
            if length == 0:
                raise RequestRefused(HTTPStatus.BAD_REQUEST, "an answer is a small form: rater, trial, choice")
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                self.close_connection = True
                raise RequestRefused(HTTPStatus.REQUEST_TIMEOUT, f"the request body stopped coming for {request_timeout:g} s "
                                     f"before its Content-Length ({length} bytes)") from None
            if len(body) < length:  # the client closed its side early
                self.close_connection = True
                raise RequestRefused(HTTPStatus.BAD_REQUEST, f"the request body ended after {len(body)} of its {length} bytes")
            return body

        def do_POST(self) -> None:
            url = urlparse(self.path)
            try:
                if url.path != "/api/answer":
                    raise RequestRefused(HTTPStatus.NOT_FOUND, f"not found: {url.path}")
                form = parse_qs(self._body().decode("utf-8", "replace"), keep_blank_values=True)
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
                log.record(fields["rater"], fields["trial"], fields["choice"], response_ms)  # refuses nan, inf, < 0
                self._next(fields["rater"])
            except RequestRefused as refused:
                self._refuse(refused)

    return StudyHandler


class StudyServer(ThreadingHTTPServer):
    """The study's HTTP server: holds the study folder's lock (serve.lock) and the answers file's
    flock until `server_close`, and logs a connection that fails (a client that hangs up) in one line."""

    def __init__(self, address, handler, answer_log: AnswerLog, lock_file) -> None:
        self.answer_log, self.lock_file = answer_log, lock_file
        super().__init__(address, handler)

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if debugging() or not isinstance(error, OSError):  # a bug keeps its traceback
            super().handle_error(request, client_address)
            return
        print(f"{client_address[0]}: request dropped ({type(error).__name__}: {error})", file=sys.stderr, flush=True)

    def server_close(self) -> None:
        super().server_close()
        self.answer_log.close()
        if self.lock_file is not None:
            release_lock(self.lock_file)
            self.lock_file = None


def take_lock(path: Path):
    """Hold `path` (serve.lock) with a non-blocking flock and write our pid into it; refuses, naming
    the lock and the pid in it, while another process (a server, a build) holds it. A lock left by a
    server that died (its flock went with it) is taken over. Returns the open file (`release_lock`)."""
    while True:
        try:
            handle = open(path, "a+b")
        except OSError as error:
            raise StudyError(f"{path}: cannot create the study folder's lock file ({error.strerror or error})") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(32).decode("ascii", "replace").strip() or "?"
            handle.close()
            raise StudyError(f"{path}: pid {holder} holds this study folder (a running `palette study serve` or "
                             "`build`); one at a time, so stop that one first") from None
        try:  # a server stopping unlinks its lock before closing it: ours must still be the file at `path`
            current = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle


def release_lock(handle) -> None:
    """Remove serve.lock (while still holding it, so no one takes the file being removed) and release it."""
    try:
        os.unlink(handle.name)
    except OSError:
        pass  # already gone, or a read-only folder: the next server takes a lock no one holds
    handle.close()


def make_server(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
                answers: str | Path | None = None, request_timeout: float = REQUEST_TIMEOUT_S) -> StudyServer:
    """A server for the study in `study_dir` (answers in `study_dir/answers.csv` unless given);
    port 0 picks a free one (`server.server_address`). Refused in one line, before anything is
    served: a study image missing or not decoding, an answers file that cannot be written or is not
    this study's, a study folder another server holds (serve.lock). `server_close()` releases it."""
    study_dir = study_folder(study_dir)
    study = load_study(study_dir)
    check_study_images(study, study_dir / "images")
    lock = take_lock(study_dir / LOCK_FILE)
    log = None
    try:
        log = AnswerLog(study, answers or study_dir / ANSWERS_FILE, exclusive=True)
        handler = make_handler(study, log, study_dir / "images", request_timeout)
        try:
            return StudyServer((host, port), handler, log, lock)
        except OSError as error:
            raise StudyError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    except BaseException:
        if log is not None:
            log.close()
        release_lock(lock)
        raise


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

    Each answer is scored from study.json and the rater's `chosen` side: its trial's kind and real
    side come from the study, never from the CSV's `kind`/`picked_real` columns, which a person could
    edit. Rows whose stored columns disagree with the study are counted
    (`answers_disagreeing_with_study`, the first line numbers in `answers_disagreeing_lines`).
    """
    if isinstance(min_catch_accuracy, bool) or not isinstance(min_catch_accuracy, (int, float)) \
            or not (math.isfinite(min_catch_accuracy) and 0 <= min_catch_accuracy <= 1):
        raise StudyError(f"min_catch_accuracy must be a fraction from 0 to 1, got {min_catch_accuracy!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise StudyError(f"resamples must be a positive whole number, got {resamples!r}")
    study_dir = study_folder(study_dir)
    study = load_study(study_dir)
    log_path = Path(answers) if answers else study_dir / ANSWERS_FILE
    if answers and not log_path.is_file():  # a file named on purpose must be there (no answers yet is the default's)
        raise StudyError(f"{log_path}: {'is not a file' if log_path.exists() else 'no such answers file'}")
    rows = read_answers(study, log_path)[0] if log_path.exists() else []
    trials = {token: {t["id"]: (index, t) for index, t in enumerate(trial_list)}
              for token, trial_list in study["raters"].items()}
    by_rater: dict[str, list[dict]] = {}
    disagreeing = []  # line numbers of rows whose stored trial columns are not the study's
    for row in rows:
        index, trial = trials[row["rater"]][row["trial"]]  # read_answers checked that it is the rater's trial
        picked_real = int(row["chosen"] == trial["real_side"])
        stored = (row["index"], row["kind"], row["name"], row["real_side"], row["picked_real"])
        if stored != (str(index), trial["kind"], trial["name"], trial["real_side"], str(picked_real)):
            disagreeing.append(row["line"])
        by_rater.setdefault(row["rater"], []).append({"kind": trial["kind"], "picked_real": picked_real})
    included, excluded = [], []
    fooled_per_rater, trials_per_rater = [], []  # included raters with at least one model trial
    catch_right = catch_total = 0
    for token, answers_of in by_rater.items():
        catches = [r for r in answers_of if r["kind"] == "catch"]
        right = sum(r["picked_real"] for r in catches)
        if not catches or right < min_catch_accuracy * len(catches):
            excluded.append({"rater": token[:8], "answers": len(answers_of), "catch_right": right, "catch_trials": len(catches)})
            continue
        included.append(token)
        catch_right, catch_total = catch_right + right, catch_total + len(catches)
        model_rows = [r for r in answers_of if r["kind"] == "model"]
        if model_rows:
            fooled_per_rater.append(sum(1 - r["picked_real"] for r in model_rows))
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
        "answers_disagreeing_with_study": len(disagreeing), "answers_disagreeing_lines": disagreeing[:10],
    }
