"""The `palette` command.

Each subcommand lives in its own module, which provides `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their subcommand runs, so
`palette --help` stays fast (no torch import). Register a subcommand here only once it works.
Bad input (ValueError, OSError, a damaged checkpoint, a YAML syntax error: palette.errors) ends with
a one-line error and exit code 2; set PALETTE_DEBUG=1 for the traceback. Ctrl-C outside training
(which saves and exits 75 on it) ends with exit code 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from palette import __version__, errors

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("palette.train_cli", "train a Palette model or the regression baseline (resumable; exit 75 = resume me)"),
    "sample": ("palette.sample_cli", "restore every image of an evaluation set (SET/source, SET/mask) with a checkpoint"),
    "infer": ("palette.infer_cli", "restore your own photos, one file or a folder (grayscale, holed + mask, JPEG, "
              "low-resolution)"),
    "eval": ("palette.eval_cli", "evaluate samples against ground truth: FID, IS, CA, PD, diversity"),
    "plan": ("palette.plan", "the price before the run: images, network evaluations, FLOPs, GPU-hours, disk per stage"),
    "import": ("palette.import_cli", "convert a checkpoint of the public reproduction (Janspiry/Palette-Image-to-Image-"
               "Diffusion-Models) into ours"),
    "weights": ("palette.weights_cli", "stage and check the evaluation weights (fetch, list)"),
    "study": ("palette.study_cli", "human 2AFC study: build it from samples, serve it to raters, score the fool rate"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="palette",
        description="Palette image-to-image diffusion: train, sample, evaluate, restore images.",
    )
    parser.add_argument("--version", action="version", version=f"palette {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        # Arguments are declared by the module; importing it here would import torch for --help.
        sub = subparsers.add_parser(name, help=help_text, add_help=False)
        sub.set_defaults(_module=module_name)
    return parser


class DefaultsShown(argparse.HelpFormatter):
    """Every option's help ends with its default (argparse's ArgumentDefaultsHelpFormatter), except
    where there is none to show: a required option, an unset one, a flag."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.required or action.default in (None, False, "", argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def subcommand_parser(name: str, module) -> argparse.ArgumentParser:
    """The subcommand's own parser; its --help shows every option's default."""
    sub = argparse.ArgumentParser(prog=f"palette {name}", description=SUBCOMMANDS[name][1],
                                  formatter_class=DefaultsShown)
    module.add_arguments(sub)
    for action in sub._actions:  # nested subcommands (palette study build/serve/score) too
        if isinstance(action, argparse._SubParsersAction):
            for nested in action.choices.values():
                nested.formatter_class = DefaultsShown
    return sub


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    top, rest = parser.parse_known_args(argv)
    module = importlib.import_module(top._module)
    sub = subcommand_parser(top.command, module)
    args = sub.parse_args(rest)
    errors.short_warnings()
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"palette {top.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # bad input: say what and where, without a traceback
        if errors.debugging() or not errors.is_bad_input(error):
            raise
        return errors.report_bad_input(f"palette {top.command}", error)


if __name__ == "__main__":
    sys.exit(main())
