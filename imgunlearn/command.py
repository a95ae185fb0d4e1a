"""The command-line idiom of every command that is not a LightningCLI: jsonargparse with composable YAML configs.

    parser = command_parser("imgunlearn demo", "Run the embedded end-to-end demo.")
    add_option(parser, "num_forget", type=int, default=200, help="forget tiles")
    add_output_options(parser)                      # --out and --overwrite
    return run_command("demo", parser, argv, main)  # main(cfg) -> int

Every command so built takes `--config FILE.yaml` (repeatable; later files and later options win; keys are
option names with underscores), `--print_config` (prints the resolved configuration and exits) and its options
spelled with underscores, as LightningCLI spells them, or with dashes (`--num_forget` or `--num-forget`). The
resolved configuration is saved with the results by `save_config`. Bad input (`ValueError`, `FileNotFoundError`,
a refused output directory) ends the command with one line on stderr naming the bad value and exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from imgunlearn.io import atomic_write_text

CONFIG_FILE = "config.yaml"

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError, KeyError)
"""What a command reports as bad input (one line, exit code 2) instead of a traceback."""


def command_parser(prog: str, description: str) -> ArgumentParser:
    """A parser with `--config` (composable YAML) and `--print_config`."""
    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False, env_prefix=None,
                            default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file of options (repeatable, later wins)")
    return parser


def add_option(parser: ArgumentParser, name: str, **kwargs: Any) -> None:
    """Add `--name` (underscores) with the dashed spelling as an alias."""
    flags = [f"--{name}"]
    if "_" in name:
        flags.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*flags, **kwargs)


def add_output_options(parser: ArgumentParser, required: bool = True, help: str = "output directory") -> None:
    """`--out` and `--overwrite` (see `imgunlearn.runs` for the rule they follow)."""
    add_option(parser, "out", type=str, required=required, help=help)
    add_option(parser, "overwrite", action="store_true",
               help="replace the results of an earlier run in --out (removed first)")


def add_device_option(parser: ArgumentParser, default: str = "auto") -> None:
    """`--device`: cpu, cuda, cuda:1, mps or auto (the best available)."""
    add_option(parser, "device", type=str, default=default, help="cpu, cuda, cuda:N, mps or auto (best available)")


def resolve_device(device: str) -> str:
    """`auto` → `cuda` when a GPU is visible, else `mps` when available, else `cpu`; other values are checked."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: {error}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but no CUDA device is visible")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA devices are visible")
    return device


def config_dict(parser: ArgumentParser, cfg: Namespace) -> dict[str, Any]:
    """The resolved configuration as plain data (no `config` entry, paths as strings)."""
    import yaml

    values = yaml.safe_load(parser.dump(cfg, skip_none=False, skip_check=True)) or {}
    values.pop("config", None)
    return values


def save_config(parser: ArgumentParser, cfg: Namespace, directory: str | Path) -> Path:
    """Write the resolved configuration as `config.yaml` into `directory` (atomically)."""
    path = Path(directory) / CONFIG_FILE
    text = parser.dump(cfg, skip_none=False, skip_check=True)
    atomic_write_text(path, "\n".join(line for line in text.splitlines() if not line.startswith("config:")) + "\n")
    return path


def _normalise(argv: list[str]) -> list[str]:
    """`--num-forget=3` → `--num_forget=3`, so an alias written with `=` works too."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
            arg = f"--{name[2:].replace('-', '_')}={value}"
        out.append(arg)
    return out


def parse(parser: ArgumentParser, argv: list[str] | None) -> Namespace:
    """Parse `argv` (default: `sys.argv[1:]`); `--print_config` prints and exits inside."""
    return parser.parse_args(_normalise(list(sys.argv[1:] if argv is None else argv)))


def run_command(name: str, parser: ArgumentParser, argv: list[str] | None,
                main: Callable[[Namespace], int | None]) -> int:
    """Parse `argv` and call `main(cfg)`; bad input ends with one line naming it and exit code 2."""
    try:
        cfg = parse(parser, argv)
    except Exception as error:  # jsonargparse raises ArgumentError for unknown options and bad values
        print(f"imgunlearn {name}: error: {error}", file=sys.stderr)
        return 2
    try:
        return int(main(cfg) or 0)
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"imgunlearn {name}: error: {message}", file=sys.stderr)
        return 2
