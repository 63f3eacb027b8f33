"""The ``tb-deadneurons`` command: ``report`` and ``demo`` subcommands.

Each subcommand lives in its own module (``report``, ``demo``); this module
only parses the command line and dispatches.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tb-deadneurons",
        description="Dead, dormant and revived units in TensorBoard logs.",
    )
    from tb_deadneurons import __version__

    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    from tb_deadneurons import demo, report

    report.add_arguments(
        sub.add_parser("report", help="summarise dead units in a logdir (no server)")
    )
    demo.add_arguments(
        sub.add_parser("demo", help="train two small MLPs, log them, serve TensorBoard")
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
