"""`oaviz …` command line. Each subcommand lives in its own module under
``oaviz/commands/`` exposing ``register(subparsers)``, which adds its parser and
sets ``func`` (called with the parsed args, returns an exit code)."""

from __future__ import annotations

import argparse
import importlib
import sys

from oaviz import __version__
from oaviz.errors import ConfigError, DataError

# One line per subcommand module; add yours here.
COMMAND_MODULES = (
    "oaviz.commands.synth",
    "oaviz.commands.train",
    "oaviz.commands.train_zoo",
    "oaviz.commands.embed",
    "oaviz.commands.importing",
    "oaviz.commands.probe",
    "oaviz.commands.digits",
    "oaviz.commands.future",
    "oaviz.commands.exchange",
    "oaviz.commands.augment",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oaviz", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"oaviz {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, ConfigError) as e:
        print(f"oaviz {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oaviz {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
