"""`palette study`: the human two-alternative forced-choice study (build, serve, score)."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path

from palette.errors import add_renamed_option, positive_int


def fraction(text: str) -> float:
    """argparse type for --min-catch-accuracy: a finite number from 0 to 1 (not -3, not nan)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return value


def seconds(text: str) -> float:
    """argparse type for a time limit: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from palette.study import BOOTSTRAP_RESAMPLES, REQUEST_TIMEOUT_S  # torch-free, so --help stays quick

    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="build a study from an evaluation set and a model's samples")
    build.add_argument("--set", required=True, help="evaluation set (SET/target/NAME.png are the real images)")
    build.add_argument("--samples", required=True, help="the model's samples (SAMPLES/sample_K/NAME.png)")
    add_renamed_option(build, "--output", "--out", required=True, help="study folder to write (study.json, images/)")
    build.add_argument("--raters", type=positive_int, default=10, help="rater links to make (default: %(default)s)")
    build.add_argument("--trials", type=positive_int, default=50, help="trials per rater (default: %(default)s)")
    build.add_argument("--catch-trials", type=int, default=5, help="of which catch trials (default: %(default)s)")
    build.add_argument("--seed", type=int, default=0, help="seeds sides, order, tokens (default: %(default)s)")
    build.add_argument("--task", default="", help="evaluation task variant, for the paper's fool rate (e.g. colorization)")
    build.add_argument("--label", default="", help="what the study compares, shown in the report")

    serve = actions.add_parser("serve", help="serve a study to raters; answers go to STUDY_DIR/answers.csv")
    serve.add_argument("study_dir", help="the study folder (from `palette study build`), or the workflow's results folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 = any free one)")
    serve.add_argument("--answers", default=None, help="answers CSV (default: STUDY_DIR/answers.csv)")
    serve.add_argument("--request-timeout", type=seconds, default=REQUEST_TIMEOUT_S,
                       help="seconds a stalled connection is kept before it is dropped (default: %(default)s)")

    score = actions.add_parser("score", help="fool rate with a 95 %% interval over raters (cluster bootstrap)")
    score.add_argument("study_dir", help="the study folder, or the workflow's results folder")
    score.add_argument("--answers", default=None, help="answers CSV (default: STUDY_DIR/answers.csv)")
    score.add_argument("--min-catch-accuracy", type=fraction, default=1.0,
                       help="raters below this fraction of catch trials right are excluded (default: %(default)s)")
    score.add_argument("--method", choices=("wilson", "exact"), default="wilson",
                       help="the pooled binomial interval shown beside it: wilson or exact (Clopper-Pearson) "
                            "(default: %(default)s)")
    score.add_argument("--resamples", type=positive_int, default=BOOTSTRAP_RESAMPLES,
                       help="cluster bootstrap resamples of the raters (default: %(default)s)")
    score.add_argument("--seed", type=int, default=0, help="seeds the bootstrap (default: %(default)s)")
    score.add_argument("--json", default=None, help="also write the score as JSON here")


def run(args: argparse.Namespace) -> int:
    from palette import study

    if args.action == "build":
        path = study.build_study(args.set, args.samples, args.output, raters=args.raters, trials_per_rater=args.trials,
                                 catch_trials=args.catch_trials, seed=args.seed, label=args.label, task=args.task)
        print(f"wrote {path}; serve it with: palette study serve {Path(args.output)}")
        return 0
    if args.action == "serve":
        server = study.make_server(args.study_dir, args.host, args.port, args.answers, args.request_timeout)
        host, port = server.server_address[:2]
        base = f"http://{host}:{port}"
        print(f"serving {args.study_dir} at {base} (answers: {server.answer_log.path}); Ctrl-C stops", file=sys.stderr)
        for link in study.rater_links(server.answer_log.study, base):
            print(link)
        sys.stdout.flush()
        # SIGTERM (kill, systemd, a container's stop) ends it like Ctrl-C: serve.lock is removed
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()
        return 0
    result = study.score_study(args.study_dir, args.answers, args.min_catch_accuracy, args.method,
                               resamples=args.resamples, seed=args.seed)
    if args.json:
        from palette.files import atomic_write

        with atomic_write(args.json) as handle:
            handle.write(json.dumps(result, indent=1).encode())
    print(format_score(result))
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def format_score(result: dict) -> str:
    count, disagreeing = result.get("answers_disagreeing_with_study"), ""
    if count:  # stored kind/side/picked_real columns that are not the study's: edited by hand?
        lines = ", ".join(map(str, result["answers_disagreeing_lines"])) + (", ..." if count > 10 else "")
        disagreeing = f"; {count} answer rows disagree with study.json (lines {lines}), scored from study.json"
    if result["fool_rate"] is None:
        return (f"no scorable answers yet ({result['answers']} answers, {result['raters_included']} of "
                f"{result['raters_answered']} raters passed the catch trials){disagreeing}")
    paper = f"; paper {result['paper_fool_rate']} %" if result["paper_fool_rate"] is not None else ""
    if result["ci_low"] is None:
        interval = f"no 95 % interval ({result['interval']})"
    else:
        interval = f"95 % interval {result['ci_low']:.1f}-{result['ci_high']:.1f} % ({result['interval']})"
    pooled = f"{result['pooled_ci_low']:.1f}-{result['pooled_ci_high']:.1f} % ({result['pooled_interval']})"
    return (f"fool rate {result['fool_rate']:.1f} % ({result['fooled']}/{result['model_trials']} model trials), "
            f"{interval}; pooled {pooled}; "
            f"{result['raters_included']} raters included, {len(result['raters_excluded'])} excluded by catch trials{paper}"
            f"{disagreeing}")
