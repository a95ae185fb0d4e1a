"""`imgunlearn challenge tune --shard i/n`: several processes (e.g. a SLURM array) share one study.

Shard 0 leads: it prepares the tuning original, draws every trial's settings, runs its shard of the trial's pool,
waits until the other shards have made theirs, scores the trial and tells the study. Every other shard follows:
it waits for the tuning original and the study, then runs its shard of each trial the lead has started (the
trial's settings are stored in the study as soon as it is drawn), until the lead says it is done. The lead
writes `OUT/lead.json` (`running`, then `done`) so that followers know when to stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgunlearn.io import write_json

LEAD_FILE = "lead.json"
POLL_SECONDS = 2.0


def mark_lead(out: Path, state: str) -> None:
    """Record the lead's state (`running` or `done`) in `out/lead.json`."""
    write_json(out / LEAD_FILE, {"state": state, "time": time.time()})


def lead_done(out: Path, since: float) -> bool:
    """Whether the lead said `done` at or after `since` (an older `done` is an earlier invocation's)."""
    import json

    try:
        record = json.loads((out / LEAD_FILE).read_text())
    except (OSError, ValueError):
        return False
    return record.get("state") == "done" and float(record.get("time", 0)) >= since


def wait_until(ready: Callable[[], bool], what: str, timeout_minutes: float | None, poll: float = POLL_SECONDS) -> None:
    """Poll `ready()` until it holds; a TimeoutError names `what` after `timeout_minutes` (None: wait on)."""
    start = time.monotonic()
    while not ready():
        if timeout_minutes is not None and time.monotonic() - start > 60 * timeout_minutes:
            raise TimeoutError(f"gave up after {timeout_minutes:g} minutes waiting for {what}")
        time.sleep(poll)


def wait_for_pool(pool: Path, name: str, n_models: int, timeout_minutes: float | None) -> None:
    """Wait until every member of `name`'s pool (and its retrained pool) exists, made by all shards."""
    from imgunlearn.challenge.pool import load_pool

    def complete() -> bool:
        try:
            load_pool(pool, name, n_models)
        except FileNotFoundError:
            return False
        return True

    wait_until(complete, f"the other shards' members of {name} in {pool}", timeout_minutes)


def follow(out: Path, study_name: str, trials: int, run_shard: Callable[[int, dict[str, Any]], None],
           timeout_minutes: float | None, pool: Path | None = None) -> int:
    """Run this shard's part of every trial the lead starts; returns how many trials it worked on.

    Args:
        out: The study directory (shared with the lead).
        study_name: The study's name in `out/study.db`.
        trials: The study's budget (stop when it is reached and nothing runs).
        run_shard: `run_shard(trial_number, settings)` makes this shard's members of that trial.
        timeout_minutes: Give up waiting for the lead after this long without work (None: wait on).
        pool: The trials' pool directory: a follower starts its first trial once the lead has made it (two
            processes creating one pool directory at once could each take the other's files for a foreign run).
    """
    import optuna
    from optuna.trial import TrialState

    from imgunlearn.runs import is_complete
    from imgunlearn.tuning import STUDY_FILE

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    wait_until(lambda: is_complete(out / "original") and (out / STUDY_FILE).is_file(),
               f"the lead (shard 0) to prepare {out / 'original'} and {out / STUDY_FILE}", timeout_minutes)
    storage = f"sqlite:///{out.resolve() / STUDY_FILE}"
    wait_until(lambda: study_name in optuna.get_all_study_names(storage), f"study {study_name}", timeout_minutes)
    study = optuna.load_study(study_name=study_name, storage=storage)
    done: set[int] = set()
    idle = time.monotonic()
    while True:
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number not in done]
        for trial in running:
            if pool is not None:
                from imgunlearn.challenge.pool import POOL_MANIFEST

                wait_until(lambda: (pool / POOL_MANIFEST).is_file(), f"the lead to create {pool}", timeout_minutes)
            run_shard(trial.number, dict(trial.params))
            done.add(trial.number)
            idle = time.monotonic()
        if running:
            continue
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
        if lead_done(out, started) or len(finished) >= trials:
            return len(done)
        if timeout_minutes is not None and time.monotonic() - idle > 60 * timeout_minutes:
            raise TimeoutError(f"no trial to work on for {timeout_minutes:g} minutes; is the lead (shard 0) running?")
        time.sleep(POLL_SECONDS)
