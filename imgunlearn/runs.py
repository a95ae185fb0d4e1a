"""Run directories: one rule for every command that writes results.

A command writes into one output directory, `out`. The rule:

- `out` may be new or empty. If it holds another run's results it is refused, naming it and `--overwrite`;
  `--overwrite` removes the old content first, so nothing stale survives. A non-empty directory that is not an
  imgunlearn run (no `run.json`) is never removed, even with `--overwrite`.
- `out` may never equal or contain an input directory (the original model, the data folder, ...).
- Results are assembled in a hidden temporary sibling (`.NAME.incomplete-XXXX`) and moved into place when the
  command succeeds; a failed run removes its temporary directory. `run.json`, written last, says the run is
  complete. A directory without a complete `run.json` is never taken for a finished result.
- Commands that can resume (pool runs, Lightning's `--ckpt_path`) work in place instead: `run.json` says
  `running` until they finish, and a rerun continues only when its configuration digest matches the one stored.

    with open_run("runs/demo", command="demo", config=config, overwrite=args.overwrite,
                  inputs=[args.original]) as run:
        write_results(run.work)           # run.work is the temporary directory
    # here runs/demo holds the results and run.json {"status": "complete", ...}

In a multi-process job only rank zero manages the directory; `open_run(..., rank_zero=False)` on the other ranks
checks nothing and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgunlearn.io import write_json

RUN_FILE = "run.json"
COMPLETE, RUNNING, FAILED = "complete", "running", "failed"


class RunDirectoryError(ValueError):
    """An output directory that may not be used as asked (holds another run, equals an input, ...)."""


def config_digest(config: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable configuration (paths and values as given)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_run(path: str | Path) -> dict[str, Any] | None:
    """The `run.json` of a run directory, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(path) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_complete(path: str | Path) -> bool:
    """Whether `path` holds a finished run."""
    record = read_run(path)
    return record is not None and record.get("status") == COMPLETE


def check_not_input(out: Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output directory that equals or contains one of `inputs`."""
    resolved = out.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if source == resolved or resolved in source.parents:
            relation = "is" if source == resolved else "contains"
            raise RunDirectoryError(f"output directory {out} {relation} the input {given}; choose another output")


def _describe(path: Path) -> str:
    record = read_run(path)
    if record is None:
        return "results of an earlier run"
    when = record.get("finished") or record.get("started") or "?"
    return f"a {record.get('status', '?')} run of `imgunlearn {record.get('command', '?')}` ({when})"


def _remove(path: Path) -> None:
    """Remove a run directory: first renamed aside (so a crash never leaves half of it in place), then deleted."""
    trash = path.with_name(f".{path.name}.removed-{secrets.token_hex(4)}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class Run:
    """A run being written.

    Attributes:
        path: Where the results end up.
        work: Where to write them now (a temporary sibling, or `path` itself for in-place runs).
        command: The command's name (`demo`, `challenge run`, ...).
        digest: `config_digest` of the run's configuration.
        in_place: Whether the run writes into `path` directly (resumable runs).
        rank_zero: Whether this process manages the directory (False on the other ranks of a multi-process job).
        resumed: Whether an in-place run continues an earlier, unfinished one.
    """

    path: Path
    work: Path
    command: str
    digest: str
    in_place: bool = False
    rank_zero: bool = True
    resumed: bool = False

    def record(self, status: str, **extra: Any) -> dict[str, Any]:
        import imgunlearn

        return {"status": status, "command": self.command, "config_digest": self.digest,
                "imgunlearn_version": imgunlearn.__version__, **extra}


def prepare_run(out: str | Path, *, command: str, config: Mapping[str, Any], overwrite: bool = False,
                resume: bool = False, in_place: bool = False, inputs: Iterable[str | Path | None] = (),
                rank_zero: bool = True) -> Run:
    """Check `out` against the rule above and make the directory to write into.

    Args:
        out: The output directory.
        command: Name of the command, recorded in `run.json`.
        config: The run's resolved configuration (its digest decides whether a resume is allowed).
        overwrite: Remove another run's results in `out` first.
        resume: Continue an unfinished in-place run with the same configuration (implies `in_place`).
        in_place: Write into `out` directly (for commands that checkpoint and resume).
        inputs: Input paths `out` may not equal or contain.
        rank_zero: False on the non-zero ranks of a multi-process job: nothing is checked or written.
    """
    out = Path(out)
    in_place = in_place or resume
    run = Run(path=out, work=out, command=command, digest=config_digest(config), in_place=in_place,
              rank_zero=rank_zero)
    if not rank_zero:
        return run
    check_not_input(out, inputs)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"output {out} exists and is not a directory")
    occupied = out.is_dir() and any(out.iterdir())
    record = read_run(out) if occupied else None
    if occupied and record is None and overwrite:
        raise RunDirectoryError(f"{out} is not empty and holds no {RUN_FILE}: it is not an imgunlearn run, so "
                                "--overwrite will not delete it; choose another output directory")
    if occupied and resume:
        if record is None:
            raise RunDirectoryError(f"cannot resume in {out}: it holds no {RUN_FILE}")
        if record.get("status") == COMPLETE:
            raise RunDirectoryError(f"{out} holds a complete run; nothing to resume (use --overwrite to redo it)")
        if record.get("config_digest") != run.digest:
            raise RunDirectoryError(f"cannot resume in {out}: its configuration differs from this one (saved "
                                    f"digest {record.get('config_digest')}, now {run.digest})")
        run.resumed = True
    elif occupied and not overwrite:
        raise RunDirectoryError(f"{out} already holds {_describe(out)}; pass --overwrite to replace it or choose "
                                "another output directory")
    elif occupied:
        _remove(out)
    if in_place:
        out.mkdir(parents=True, exist_ok=True)
        started = (record or {}).get("started") if run.resumed else None
        write_json(out / RUN_FILE, run.record(RUNNING, started=started or _now()))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        run.work = out.with_name(f".{out.name}.incomplete-{secrets.token_hex(4)}")
        run.work.mkdir()
        write_json(run.work / RUN_FILE, run.record(RUNNING, started=_now()))
    return run


def finish_run(run: Run, **extra: Any) -> Path:
    """Mark `run` complete (`run.json` written last) and move its results into place."""
    if not run.rank_zero:
        return run.path
    started = (read_run(run.work) or {}).get("started")
    write_json(run.work / RUN_FILE, run.record(COMPLETE, started=started, finished=_now(), **extra))
    if not run.in_place:
        if run.path.exists():  # emptied or removed by prepare_run; something appeared since
            if any(run.path.iterdir()):
                raise RunDirectoryError(f"{run.path} was written by another process while this run worked; "
                                        f"results kept in {run.work}")
            run.path.rmdir()
        os.replace(run.work, run.path)
        run.work = run.path
    return run.path


def fail_run(run: Run, error: BaseException) -> None:
    """Record the failure: a temporary directory is removed; an in-place run keeps its files, marked failed."""
    if not run.rank_zero:
        return
    if run.in_place:
        if run.path.is_dir():
            started = (read_run(run.path) or {}).get("started")
            write_json(run.path / RUN_FILE, run.record(FAILED, started=started, finished=_now(),
                                                       error=f"{type(error).__name__}: {error}"))
    else:
        shutil.rmtree(run.work, ignore_errors=True)


@contextmanager
def open_run(out: str | Path, *, command: str, config: Mapping[str, Any], overwrite: bool = False,
             resume: bool = False, in_place: bool = False, inputs: Iterable[str | Path | None] = (),
             rank_zero: bool = True) -> Iterator[Run]:
    """`prepare_run`, then `finish_run` when the block succeeds or `fail_run` when it raises (see module doc)."""
    run = prepare_run(out, command=command, config=config, overwrite=overwrite, resume=resume, in_place=in_place,
                      inputs=inputs, rank_zero=rank_zero)
    try:
        yield run
    except BaseException as error:
        fail_run(run, error)
        raise
    finish_run(run)
