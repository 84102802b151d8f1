"""`palette train`: train a Palette model (or the regression baseline) from a config file,
resumable; the exit codes say what happened (palette.train: 0 done, 75 resume me, 65 NaN loss,
78 bad config or incompatible checkpoint).

Torch-free at import: `run` installs the stop-signal handlers (palette.signals) before it imports
torch and the trainer, so a SIGTERM in the first seconds also exits 75, not 143.
"""

from __future__ import annotations

import argparse
import os
import sys

from palette.config import PAPER_SCALE_PARAMETERS
from palette.signals import RESUME_EXIT_CODE, StopSignals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training config YAML (schema: palette/schemas/train.schema.yaml)")
    parser.add_argument("--workdir", required=True, help="work folder: checkpoints, logs; resumed from if it holds a checkpoint")
    parser.add_argument("--final", default=None, help="where to write the final EMA checkpoint (default WORKDIR/final.pt)")
    parser.add_argument("--steps", type=int, default=None, help="override config 'steps'")
    parser.add_argument("--segment", action="store_true",
                        help="train one segment of a longer run: stop at 'steps' with a resumable checkpoint and "
                             "write no final checkpoint (the workflow's train_segment jobs); a work folder already "
                             "at or past 'steps' is done at once")
    parser.add_argument("--time-budget", type=float, default=None,
                        help=f"seconds this run may take; it saves and exits with code {RESUME_EXIT_CODE} before then")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (VALUE parsed as YAML), e.g. --set lr=2e-4")
    parser.add_argument("--allow-cpu-paper-scale", action="store_true",
                        help=f"train a network of {PAPER_SCALE_PARAMETERS // 10**6} M parameters or more on a CPU "
                             "(refused otherwise: the paper's U-Net would take years there)")
    parser.add_argument("--no-lease", action="store_true",
                        help="do not lease a GPU through palette.lease (it is skipped anyway when CUDA_VISIBLE_DEVICES is set)")
    parser.add_argument("--lease-wait", type=float, default=0.0,
                        help=f"seconds to wait for a free GPU; none free -> exit code {RESUME_EXIT_CODE} (try again later)")


def run(args: argparse.Namespace) -> int:
    # First, before the slow imports: a stop signal from here on is recorded; the set-up stops at
    # its next step and the loop saves (palette.train.train receives these same handlers).
    with StopSignals() as signals:
        return _run(args, signals)


def _run(args: argparse.Namespace, signals: StopSignals) -> int:
    import torch
    import yaml

    from palette.checkpoint import CheckpointError
    from palette.config import ConfigError, YAMLRefused, load_config, load_yaml
    from palette.train import (
        CONFIG_EXIT_CODE, NONFINITE_LOSS_EXIT_CODE, NonFiniteLossError, TrainingPreempted, stop_if_signalled, train,
    )

    overrides = {}
    for item in args.set:
        key, separator, value = item.partition("=")
        if not separator:
            print(f"palette train: --set expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return CONFIG_EXIT_CODE
        try:
            overrides[key.strip()] = load_yaml(value)
        except YAMLRefused as error:  # a key given twice, aliases that expand too far
            print(f"palette train: --set {item!r}: {error.problem}", file=sys.stderr)
            return CONFIG_EXIT_CODE
        except yaml.YAMLError as error:
            print(f"palette train: --set {item!r}: the value is not YAML ({getattr(error, 'problem', error)})",
                  file=sys.stderr)
            return CONFIG_EXIT_CODE
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.time_budget is not None:
        overrides["time_budget"] = args.time_budget
    try:
        stop_if_signalled(signals)
        config = load_config(args.config, **overrides)
        if not args.no_lease and "WORLD_SIZE" not in os.environ and config.device != "cpu":
            from palette.lease import LeaseError, lease_for_job

            try:
                lease_for_job(1, config.device, wait_seconds=args.lease_wait, stopped=lambda: signals.received)
            except LeaseError as error:
                print(f"palette train: {error}; try again later", file=sys.stderr)
                return RESUME_EXIT_CODE
        if args.segment and args.final:
            print("palette train: --segment writes no final checkpoint; drop --final", file=sys.stderr)
            return CONFIG_EXIT_CODE
        train(config, args.workdir, args.final, allow_cpu_paper_scale=args.allow_cpu_paper_scale,
              segment=args.segment, signals=signals)
    except (ConfigError, CheckpointError) as error:
        print(f"palette train: {error}", file=sys.stderr)
        return CONFIG_EXIT_CODE
    except NonFiniteLossError as error:
        print(f"palette train: {error}", file=sys.stderr)
        return NONFINITE_LOSS_EXIT_CODE
    except TrainingPreempted as stopped:
        if os.environ.get("RANK", "0") == "0":
            print(f"palette train: {stopped}", file=sys.stderr)
        return RESUME_EXIT_CODE
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0
