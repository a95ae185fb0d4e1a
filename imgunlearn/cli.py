"""The `imgunlearn` console script.

    imgunlearn pretrain  ...   train an original I2I model (LightningCLI, YAML configs)
    imgunlearn unlearn   ...   unlearn with a registered method (LightningCLI, YAML configs)
    imgunlearn demo      ...   the embedded end-to-end demo
    imgunlearn evaluate  ...   evaluate checkpoints on forget / retain splits and write a report
    imgunlearn challenge ...   the face age-predictor track (train-original, unlearn, run, score, methods)
    imgunlearn tune      ...   search an unlearning method's settings on a validation split
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "pretrain": "imgunlearn.lightning_cli:pretrain_main",
    "unlearn": "imgunlearn.lightning_cli:unlearn_main",
    "demo": "imgunlearn.demo:main",
    "evaluate": "imgunlearn.evaluation.cli:main",
    "challenge": "imgunlearn.challenge.cli:main",
    "tune": "imgunlearn.tune:main",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if argv[0] in ("-V", "--version"):
        from imgunlearn import __version__

        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"imgunlearn: unknown command {command!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, function = COMMANDS[command].split(":")
    result = getattr(importlib.import_module(module), function)(rest)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
