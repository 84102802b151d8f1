"""Hostile and careless use of the human study (`palette study serve` and `score`), as in
tests/test_hostile.py: each case ends with a one-line message naming the file (or an HTTP error with
a short reason), the documented exit code, no traceback, and the user's files byte-identical.

Servers run for real on 127.0.0.1 with a free port: in a subprocess where the test needs a second
process (the lock), a signal, or the server's log; in a thread otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from test_hostile import refused as refused_in_process

from conftest import unavailable
from palette import study as S
from palette.cli import main
from palette.imageio import save_image

REPO = Path(__file__).resolve().parents[1]
LOCK = "serve.lock"  # the server's lock in the study folder
WEEK_MS = 604_800_000  # the longest response time stored


@pytest.fixture
def study_dir(tmp_path) -> Path:
    """A study of 3 inputs, 2 raters x 4 trials (1 catch trial each)."""
    rng = np.random.default_rng(0)
    for i in range(3):
        real = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        save_image(tmp_path / "set" / "target" / f"img{i}.png", real)
        save_image(tmp_path / "samples" / "sample_0" / f"img{i}.png", 255 - real)
    S.build_study(tmp_path / "set", tmp_path / "samples", tmp_path / "study", raters=2, trials_per_rater=4,
                  catch_trials=1, seed=1, task="colorization")
    return tmp_path / "study"


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(argv: list[str], capsys, expected_code: int = 2) -> str:
    """test_hostile.refused (exit `expected_code`, one line, no traceback), where a server that
    starts instead of refusing fails the test (rather than serving forever)."""
    started = AssertionError("the server started instead of refusing")
    with mock.patch.object(socketserver.BaseServer, "serve_forever", side_effect=started):
        return refused_in_process(argv, capsys, expected_code)


def environment() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PALETTE_DEBUG", None)
    return env


def no_write_override() -> list[str]:
    """A command prefix under which a read-only file cannot be written: nothing for a normal user;
    for root, setpriv without CAP_DAC_OVERRIDE (root writes any file regardless of its mode)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        unavailable("running as root without setpriv: a read-only file stays writable")
    return ["setpriv", "--inh-caps=-dac_override", "--bounding-set=-dac_override", "--"]


class Server:
    """`palette study serve FOLDER --port 0 ...` in a subprocess; its log (stderr) kept in a file."""

    def __init__(self, folder: Path, *args: str, prefix: list[str] | None = None) -> None:
        self.log = folder.parent / f"serve-{time.monotonic_ns()}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [*(prefix or []), sys.executable, "-m", "palette.cli", "study", "serve", str(folder), "--port", "0", *args],
                stdout=subprocess.PIPE, stderr=log, text=True, env=environment())
        line = self.process.stdout.readline()  # the first rater link, printed once the server listens
        assert line.startswith("http://127.0.0.1:"), (line, self.log.read_text())
        self.base = line.split("/study?")[0]
        self.port = int(self.base.rsplit(":", 1)[1])

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as `kill` or a service manager stops it: exit code and the whole log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=20)
        self.process.stdout.close()
        return code, self.log.read_text()


@pytest.fixture
def servers():
    started = []

    def start(folder, *args, prefix=None):
        started.append(Server(folder, *args, prefix=prefix))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
        server.process.stdout.close()


def request(url: str, data=None) -> tuple[int, str]:
    body = None if data is None else (data if isinstance(data, bytes) else urllib.parse.urlencode(data).encode())
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=20) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def raw(port: int, head: bytes, body: bytes = b"", hang_up: bool = False, timeout: float = 20) -> tuple[int, str]:
    """Send a hand-made HTTP request; `hang_up` closes our side after the body. Status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(head + body)
        if hang_up:
            connection.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")


def post_head(length: str | int) -> bytes:
    return (f"POST /api/answer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def answer(study: dict, token: str, index: int, side: str = "left", **extra) -> dict:
    return {"rater": token, "trial": study["raters"][token][index]["id"], "choice": side, **extra}


def answer_everything(study_dir: Path, choose) -> None:
    study = S.load_study(study_dir)
    log = S.AnswerLog(study, study_dir / S.ANSWERS_FILE)
    for token, trials in study["raters"].items():
        for trial in trials:
            log.record(token, trial["id"], choose(trial), 900)


# ----------------------------------------------------------------------------- one writer per folder
def test_a_second_server_on_the_folder_is_refused_naming_the_lock_and_its_pid(study_dir, servers, tmp_path, capsys):
    first = servers(study_dir)
    study = S.load_study(study_dir)
    token = next(iter(study["raters"]))
    lock = study_dir / LOCK
    assert lock.read_text().strip() == str(first.process.pid)
    before = snapshot(tmp_path)
    # the study folder, or the workflow's results folder around it
    for folder in (study_dir, tmp_path):
        second = subprocess.run([sys.executable, "-m", "palette.cli", "study", "serve", str(folder), "--port", "0"],
                                capture_output=True, text=True, env=environment(), timeout=60)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"{lock}: pid {first.process.pid} holds this study folder (a running `palette study serve`" in second.stderr
    # a copy of the study folder (its own serve.lock) writing into the same answers file
    shutil.copytree(study_dir, tmp_path / "copy", ignore=shutil.ignore_patterns(LOCK, S.ANSWERS_FILE))
    third = subprocess.run([sys.executable, "-m", "palette.cli", "study", "serve", str(tmp_path / "copy"), "--port", "0",
                            "--answers", str(study_dir / S.ANSWERS_FILE)], capture_output=True, text=True,
                           env=environment(), timeout=60)
    assert third.returncode == 2 and third.stderr.count("\n") == 1, third.stderr
    assert f"{study_dir / S.ANSWERS_FILE}: another `palette study serve` is writing this answers file" in third.stderr
    shutil.rmtree(tmp_path / "copy")
    # nor is the study rebuilt under the raters
    message = refused(["study", "build", "--set", str(tmp_path / "set"), "--samples", str(tmp_path / "samples"),
                       "--out", str(study_dir), "--raters", "2", "--trials", "4", "--catch-trials", "1"], capsys)
    assert f"{lock}: pid {first.process.pid} holds this study folder" in message
    assert snapshot(tmp_path) == before
    # the first server never noticed, and SIGTERM stops it cleanly, taking its lock along
    assert request(f"{first.base}/api/answer", answer(study, token, 0))[0] == 200
    code, log = first.stop()
    assert code == 0 and "Traceback" not in log and not lock.exists()


def test_a_stale_lock_of_a_dead_server_is_taken_over(study_dir):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (study_dir / LOCK).write_text(f"{dead.pid}\n")  # left by a server killed with SIGKILL
    server = S.make_server(study_dir, "127.0.0.1", 0)
    try:
        assert (study_dir / LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(S.StudyError, match=f"serve.lock: pid {os.getpid()} holds this study folder"):
            S.make_server(study_dir, "127.0.0.1", 0)
    finally:
        server.server_close()
    assert not (study_dir / LOCK).exists()
    S.make_server(study_dir, "127.0.0.1", 0).server_close()  # released: a new server starts


# ----------------------------------------------------------------------------- start-up checks
def test_a_read_only_answers_file_is_refused_before_serving(study_dir, tmp_path, capsys):
    prefix = no_write_override()
    answers = study_dir / S.ANSWERS_FILE
    answers.write_text(",".join(S.ANSWER_COLUMNS) + "\r\n")
    answers.chmod(0o444)
    before = snapshot(tmp_path)
    result = subprocess.run([*prefix, sys.executable, "-m", "palette.cli", "study", "serve", str(study_dir), "--port", "0"],
                            capture_output=True, text=True, env=environment(), timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{answers}: cannot write answers there (Permission denied)" in result.stderr
    assert snapshot(tmp_path) == before and not (study_dir / LOCK).exists()
    (tmp_path / "a_folder.csv").mkdir()
    message = refused(["study", "serve", str(study_dir), "--port", "0", "--answers", str(tmp_path / "a_folder.csv")], capsys)
    assert f"{tmp_path / 'a_folder.csv'}: cannot write answers there (Is a directory)" in message


def test_a_missing_or_broken_study_image_is_refused_before_serving(study_dir, tmp_path, capsys):
    study = S.load_study(study_dir)
    names = sorted({t[side] for trials in study["raters"].values() for t in trials for side in ("left", "right")})
    (study_dir / "images" / names[0]).unlink()
    before = snapshot(tmp_path)
    message = refused(["study", "serve", str(study_dir), "--port", "0"], capsys)
    assert str(study_dir / "images" / names[0]) in message and "no such file" in message
    broken = study_dir / "images" / names[0]
    broken.write_bytes((study_dir / "images" / names[1]).read_bytes()[:60])  # cut short
    before = snapshot(tmp_path)
    message = refused(["study", "serve", str(study_dir), "--port", "0"], capsys)
    assert str(broken) in message and "cannot load image" in message
    assert snapshot(tmp_path) == before and not (study_dir / LOCK).exists()


def test_a_study_file_with_a_path_for_an_image_name_is_refused(study_dir, capsys):
    record = json.loads((study_dir / "study.json").read_text())
    next(iter(record["raters"].values()))[0]["left"] = "../study.json"
    (study_dir / "study.json").write_text(json.dumps(record))
    message = refused(["study", "serve", str(study_dir), "--port", "0"], capsys)
    assert str(study_dir / "study.json") in message and "not a plain file name" in message


# ----------------------------------------------------------------------------- while serving
def test_an_image_deleted_while_serving_is_a_clean_500_and_one_log_line(study_dir, servers):
    server = servers(study_dir)
    study = S.load_study(study_dir)
    name = next(iter(study["raters"].values()))[0]["left"]
    (study_dir / "images" / name).unlink()
    status, body = request(f"{server.base}/images/{name}")
    assert status == 500 and name in body and "cannot be read" in body and body.count("\n") == 1
    assert request(f"{server.base}/")[0] == 200  # still serving
    code, log = server.stop()
    assert code == 0 and "Traceback" not in log
    assert [line for line in log.splitlines() if "cannot be read" in line and name in line] != []


def test_an_answers_file_made_read_only_while_serving_is_a_503_that_can_be_retried(study_dir, servers):
    server = servers(study_dir, prefix=no_write_override())
    study = S.load_study(study_dir)
    token = next(iter(study["raters"]))
    answers = study_dir / S.ANSWERS_FILE
    before = answers.read_bytes()
    answers.chmod(0o444)
    status, body = request(f"{server.base}/api/answer", answer(study, token, 0))
    assert status == 503 and "the answer was not saved" in body and "try again" in body
    assert answers.read_bytes() == before
    answers.chmod(0o644)
    status, body = request(f"{server.base}/api/answer", answer(study, token, 0))  # the page sends it again
    assert status == 200 and json.loads(body)["trial"]["index"] == 1
    code, log = server.stop()
    assert code == 0 and "Traceback" not in log and f"the answer was not saved: {answers}: Permission denied" in log


def test_bad_content_lengths_and_stalled_bodies_get_http_errors_and_others_are_served(study_dir, servers):
    server = servers(study_dir, "--request-timeout", "1")
    study = S.load_study(study_dir)
    token = next(iter(study["raters"]))
    answers = study_dir / S.ANSWERS_FILE
    before = answers.read_bytes()
    form = urllib.parse.urlencode(answer(study, token, 0)).encode()
    for length, status, reason in (("abc", 400, "Content-Length must be a whole number"),
                                   ("-5", 400, "Content-Length must be a whole number"),
                                   (" 1_0", 400, "Content-Length must be a whole number"),
                                   (str(10**12), 413, "at most 4096 bytes")):
        got = raw(server.port, post_head(length))  # refused before any body is read
        assert got[0] == status and reason in got[1], (length, got)
    no_length = b"POST /api/answer HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert raw(server.port, no_length)[0] == 411
    # a body that ends early: the client hung up (400) or stalls (408 after the timeout)
    got = raw(server.port, post_head(len(form) + 10), form, hang_up=True)
    assert got[0] == 400 and "ended after" in got[1]
    stalled = {}
    thread = threading.Thread(target=lambda: stalled.update(got=raw(server.port, post_head(len(form) + 10), form)))
    started = time.monotonic()
    thread.start()
    time.sleep(0.2)
    assert request(f"{server.base}/api/next?rater={token}")[0] == 200  # others are served meanwhile
    thread.join(30)
    assert stalled["got"][0] == 408 and "stopped coming" in stalled["got"][1]
    assert 0.9 < time.monotonic() - started < 15
    assert answers.read_bytes() == before
    assert raw(server.port, post_head(len(form)), form)[0] == 200  # and a good answer still counts
    code, log = server.stop()
    assert code == 0 and "Traceback" not in log


def test_a_client_that_hangs_up_mid_reply_is_one_log_line(study_dir, capsys):
    server = S.make_server(study_dir, "127.0.0.1", 0)
    try:
        try:
            raise BrokenPipeError(32, "Broken pipe")  # as writing the reply to a closed connection raises
        except BrokenPipeError:
            server.handle_error(None, ("192.0.2.7", 40000))
    finally:
        server.server_close()
    assert capsys.readouterr().err == "192.0.2.7: request dropped (BrokenPipeError: [Errno 32] Broken pipe)\n"


def test_response_times_that_are_not_finite_or_in_range_are_refused(study_dir):
    server = S.make_server(study_dir, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        study = S.load_study(study_dir)
        token = next(iter(study["raters"]))
        answers = study_dir / S.ANSWERS_FILE
        before = answers.read_bytes()
        for value in ("nan", "inf", "-inf", "-1", str(WEEK_MS + 1), "1e400"):
            status, body = request(f"{base}/api/answer", answer(study, token, 0, response_ms=value))
            assert status == 400 and "response_ms must be milliseconds from 0 to 604800000" in body, (value, body)
        assert answers.read_bytes() == before
        assert request(f"{base}/api/answer", answer(study, token, 0, response_ms=str(WEEK_MS)))[0] == 200
        with pytest.raises(S.RequestRefused, match="response_ms"):  # the log refuses it for any caller
            server.answer_log.record(token, study["raters"][token][1]["id"], "left", float("nan"))
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- scoring
def test_the_score_is_recomputed_from_the_study_not_the_csvs_columns(study_dir, capsys):
    answer_everything(study_dir, lambda trial: trial["real_side"])  # never fooled, every catch right
    honest = S.score_study(study_dir, min_catch_accuracy=1.0)
    assert (honest["fool_rate"], honest["answers_disagreeing_with_study"]) == (0.0, 0)
    answers = study_dir / S.ANSWERS_FILE
    rows = list(csv.DictReader(io.StringIO(answers.read_text())))
    for row in rows:  # a person "improves" the result: every model trial fooled the rater
        if row["kind"] == "model":
            row["picked_real"] = "0"
        else:
            row["kind"] = "model"
    edited = io.StringIO()
    writer = csv.DictWriter(edited, fieldnames=S.ANSWER_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    answers.write_text(edited.getvalue())
    before = snapshot(study_dir)
    result = S.score_study(study_dir, min_catch_accuracy=1.0)
    assert result["answers_disagreeing_with_study"] == len(rows) == 8
    assert result["answers_disagreeing_lines"] == list(range(2, 10))
    assert {key: value for key, value in result.items() if not key.startswith("answers_disagreeing")} == \
        {key: value for key, value in honest.items() if not key.startswith("answers_disagreeing")}
    assert main(["study", "score", str(study_dir)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("fool rate 0.0 %") and "8 answer rows disagree with study.json (lines 2, 3" in printed
    assert snapshot(study_dir) == before


def test_score_refuses_a_missing_answers_file_and_a_catch_accuracy_out_of_range(study_dir, tmp_path, capsys):
    message = refused(["study", "score", str(study_dir), "--answers", str(tmp_path / "nonexistent.csv")], capsys)
    assert f"{tmp_path / 'nonexistent.csv'}: no such answers file" in message
    message = refused(["study", "score", str(study_dir), "--answers", str(tmp_path)], capsys)
    assert f"{tmp_path}: is not a file" in message
    for value in ("-3", "nan", "inf", "1.5", "most"):
        message = refused(["study", "score", str(study_dir), "--min-catch-accuracy", value], capsys)
        assert f"argument --min-catch-accuracy: expected a fraction from 0 to 1, got '{value}'" in message
    message = refused(["study", "score", str(study_dir), "--resamples", "0"], capsys)
    assert "argument --resamples" in message
    for value in (float("nan"), -3, 2):  # the workflow passes it from its config
        with pytest.raises(S.StudyError, match="min_catch_accuracy must be a fraction from 0 to 1"):
            S.score_study(study_dir, min_catch_accuracy=value)
    assert not (tmp_path / "nonexistent.csv").exists()


def _rewrite_row(answers: Path, line: int, **changes) -> None:
    rows = list(csv.reader(io.StringIO(answers.read_text())))
    rows[line - 1] = [changes.get(column, value) for column, value in zip(S.ANSWER_COLUMNS, rows[line - 1])]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    answers.write_text(out.getvalue())


@pytest.mark.parametrize("change, expected", [
    ({"response_ms": "nan"}, "line 3: response_ms must be milliseconds from 0 to 604800000, got 'nan'"),
    ({"response_ms": "-4"}, "line 3: response_ms must be milliseconds"),
    ({"response_ms": "soon"}, "line 3: response_ms must be a number, got 'soon'"),
    ({"chosen": "middle"}, "line 3: chosen must be left or right, got 'middle'"),
])
def test_answer_rows_the_server_would_not_write_are_refused_naming_the_line(study_dir, tmp_path, capsys, change, expected):
    answer_everything(study_dir, lambda trial: "left")
    answers = study_dir / S.ANSWERS_FILE
    _rewrite_row(answers, 3, **change)
    before = snapshot(tmp_path)
    for argv in (["study", "score", str(study_dir)], ["study", "serve", str(study_dir), "--port", "0"]):
        message = refused(argv, capsys)
        assert f"{answers} {expected}" in message, message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content, expected", [
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\n" + bytes(range(256)) * 4, "line 1: not an answers file (binary data"),
    (",".join(S.ANSWER_COLUMNS).encode() + b"\r\nabc,\xff\xfe\r\n", "line 2: not an answers file (binary data"),
    (b"hello\nworld\n", "line 1: not an answers file (its columns must be study_id,time_utc,rater"),
    (b"hello", "line 1: not an answers file (its columns must be"),
    (b"rater,trial,chosen\r\nx,y,left\r\n", "line 1: not an answers file (its columns must be"),
    (",".join(S.ANSWER_COLUMNS).encode() + b"\r\na,b,c\r\n", "line 2: 3 fields, not the 11 columns"),
    (",".join(S.ANSWER_COLUMNS).encode() + b'\r\n"' + b"x" * 200_000 + b'"\r\n', "line 2: not an answers file (field larger"),
])
def test_a_binary_or_columnless_answers_file_is_refused_in_one_line(study_dir, tmp_path, capsys, content, expected):
    answers = study_dir / S.ANSWERS_FILE
    answers.write_bytes(content)
    before = snapshot(tmp_path)
    for argv in (["study", "score", str(study_dir)], ["study", "serve", str(study_dir), "--port", "0"]):
        message = refused(argv, capsys)
        assert message.startswith(f"palette study: error: {answers} {expected}"), message
    assert snapshot(tmp_path) == before


def test_a_header_cut_by_a_crash_is_no_answers_yet_and_written_again(study_dir):
    answers = study_dir / S.ANSWERS_FILE
    answers.write_bytes(b"study_id,time_u")  # the server was killed while creating the file
    assert S.score_study(study_dir)["answers"] == 0
    study = S.load_study(study_dir)
    token = next(iter(study["raters"]))
    S.AnswerLog(study, answers).record(token, study["raters"][token][0]["id"], "left", 5)
    assert S.score_study(study_dir)["answers"] == 1
    assert answers.read_bytes().startswith(",".join(S.ANSWER_COLUMNS).encode() + b"\r\n")
