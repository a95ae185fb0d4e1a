"""`imgunlearn challenge SUBCOMMAND ...`: each subcommand lives in its own module as `main(argv) -> int`."""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "train-original": "imgunlearn.challenge.commands:train_original_main",
    "unlearn": "imgunlearn.challenge.commands:unlearn_main",
    "run": "imgunlearn.challenge.pool_commands:run_main",
    "score": "imgunlearn.challenge.pool_commands:score_main",
    "tune": "imgunlearn.challenge.tune:main",
    "methods": "imgunlearn.challenge.commands:methods_main",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: imgunlearn challenge {" + ",".join(SUBCOMMANDS) + "} ...")
        return 0
    if argv[0] not in SUBCOMMANDS:
        print(f"imgunlearn challenge: unknown subcommand {argv[0]!r}; choose from {', '.join(SUBCOMMANDS)}",
              file=sys.stderr)
        return 2
    module, function = SUBCOMMANDS[argv[0]].split(":")
    return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)
