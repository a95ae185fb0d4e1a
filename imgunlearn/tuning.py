"""Searching a method's settings: one core for `imgunlearn tune` (I2I) and `imgunlearn challenge tune`.

A method declares what may be searched beside its constructor defaults::

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "lr": FloatDistribution(1e-4, 3e-3, log=True),
        "forget_target": CategoricalDistribution(["flat", "normal"]),
    }

A study samples from that space with Optuna's TPE sampler (seeded) and lives in SQLite, `OUT/study.db`, so a
study that is stopped resumes where it was, and one that finished can be extended by asking for more trials.
The budget is the user's: `trials` is the total number of finished trials the study should hold, `max_minutes`
bounds the wall time of one invocation (no trial is started after it; the running one finishes). A trial
returns a `TrialResult`: the value to maximise, optionally a constraint (feasible when <= 0) and figures to
keep. The best trial is the feasible one of highest value; without any feasible trial, the least infeasible.
After every trial the trials table (`trials.csv`) is rewritten, so an interrupted study leaves current results.

Trials left `RUNNING` by a killed process are marked failed when the study is opened again in one process, and
their settings are queued to run again first, so nothing is lost and the budget stays honest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgunlearn.io import atomic_write_text
from imgunlearn.runs import COMPLETE, RUNNING, Run, RunDirectoryError, config_digest, prepare_run, read_run

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

STUDY_FILE = "study.db"
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yaml"
BUDGET_OPTIONS = ("trials", "max_minutes", "overwrite", "jobs", "threads", "progress", "device", "shard",
                  "shard_timeout")
"""Options that say how much or where to search, not what: left out of the configuration digest, so a study is
resumed or extended with another budget."""


@dataclass
class TrialResult:
    """What one trial measured.

    Attributes:
        value: The objective, maximised.
        constraint: Feasible when <= 0 (e.g. retain PSNR lost beyond the tolerance, in dB); None = unconstrained.
        figures: Further numbers to keep with the trial (written to `trials.csv`).
    """

    value: float
    constraint: float | None = None
    figures: dict[str, float] = field(default_factory=dict)


# ---- search spaces -------------------------------------------------------------------------------------------


def search_space_of(owner: type, name: str, fixed: Mapping[str, Any] | None = None) -> dict[str, BaseDistribution]:
    """The search space `owner` declares, without the settings held `fixed`.

    Raises:
        ValueError: `owner` declares no space, a fixed setting is not in it, or nothing is left to search.
    """
    from optuna.distributions import BaseDistribution

    space = dict(getattr(owner, "search_space", None) or {})
    if not space:
        raise ValueError(f"method {name!r} declares no search space (class attribute search_space); "
                         "nothing to tune")
    for key, distribution in space.items():
        if not isinstance(distribution, BaseDistribution):
            raise ValueError(f"search space of {name!r}: {key!r} is {distribution!r}, not an optuna distribution")
    fixed = dict(fixed or {})
    for key in fixed:
        space.pop(key, None)
    if not space:
        raise ValueError(f"every searchable setting of {name!r} is fixed ({', '.join(fixed)}); nothing to tune")
    return space


def default_settings(owner: type, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """The constructor defaults of `owner` (its own, then its bases') for the settings in `space` that the space
    holds: the shipped settings, run as a study's first trial so tuning starts from them."""
    import inspect

    defaults: dict[str, Any] = {}
    for cls in owner.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        for name, parameter in inspect.signature(init).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults.setdefault(name, parameter.default)
    return {key: defaults[key] for key, distribution in space.items()
            if key in defaults and _holds(distribution, defaults[key])}


def _holds(distribution: BaseDistribution, value: Any) -> bool:
    """Whether `distribution` can produce `value`."""
    if hasattr(distribution, "choices"):
        return value in distribution.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return distribution.low <= value <= distribution.high


def describe_space(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    """A readable, stable description of each distribution (for configs and digests)."""
    from optuna.distributions import distribution_to_json

    return {key: distribution_to_json(distribution) for key, distribution in sorted(space.items())}


# ---- the study's directory -------------------------------------------------------------------------------------


def study_digest_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` without the budget options (`BUDGET_OPTIONS`)."""
    return {key: value for key, value in config.items() if key not in BUDGET_OPTIONS}


def open_study_dir(out: str | Path, *, command: str, config: Mapping[str, Any], overwrite: bool = False,
                   inputs: Iterable[str | Path | None] = (), rank_zero: bool = True) -> Run:
    """The in-place run directory of a study: new, or the same study resumed or extended.

    A directory holding a study of the same configuration (digest of `config` without the budget) is resumed,
    also when that study had finished (asking for more trials extends it). Anything else follows
    `imgunlearn.runs`: another run is refused unless `overwrite`.
    """
    out = Path(out)
    digest_config = study_digest_config(config)
    record = read_run(out) if out.is_dir() else None
    same = (record is not None and not overwrite and record.get("command") == command
            and record.get("config_digest") == config_digest(digest_config) and (out / STUDY_FILE).is_file())
    if same and record.get("status") == COMPLETE and rank_zero:
        from imgunlearn.io import write_json

        write_json(out / "run.json", {**record, "status": RUNNING})  # reopened to extend it
    try:
        return prepare_run(out, command=command, config=digest_config, overwrite=overwrite, resume=same,
                           in_place=True, inputs=inputs, rank_zero=rank_zero)
    except RunDirectoryError as error:
        if record is not None and record.get("command") == command and not overwrite:
            raise RunDirectoryError(f"{error}. A study resumes only with the same settings (the budget --trials "
                                    "and --max_minutes may change)") from None
        raise


def open_study(directory: str | Path, name: str, seed: int, constrained: bool = False,
               startup_trials: int = 10, recover: bool = True, first: Mapping[str, Any] | None = None) -> optuna.Study:
    """The study stored in `directory/study.db` (created on first use), maximising, with a seeded TPE sampler.

    The sampler's seed is `seed` plus the number of trials already stored, so a resumed study draws new points
    instead of repeating the first ones. With `recover`, trials left running by a killed process are marked
    failed and their settings queued again. A new study runs the settings `first` (e.g. `default_settings`)
    as its first trial; settings it leaves out are drawn.
    """
    import optuna
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{Path(directory).resolve() / STUDY_FILE}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    if recover:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(trial._trial_id, "error", "interrupted; its settings run again")
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial(dict(trial.params), skip_if_exists=False)
    native = hasattr(optuna.trial.Trial, "set_constraint")  # optuna >= 5 reads constraints set on the trial
    constraints = _constraints if constrained and not native else None
    if first and not study.trials:
        study.enqueue_trial(dict(first))
    study.sampler = TPESampler(seed=seed + len(study.trials), n_startup_trials=startup_trials,
                               constraints_func=constraints)
    return study


def _constraints(trial: FrozenTrial) -> tuple[float]:
    return (float(trial.user_attrs.get("constraint", 0.0)),)


def finished_trials(study: optuna.Study, running: bool = False) -> list[FrozenTrial]:
    """Trials that count against the budget: complete or failed (and running ones with `running`)."""
    from optuna.trial import TrialState

    states = [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    if running:
        states.append(TrialState.RUNNING)
    return study.get_trials(deepcopy=False, states=tuple(states))


# ---- running ---------------------------------------------------------------------------------------------------


def run_trials(study: optuna.Study, space: Mapping[str, BaseDistribution],
               evaluate: Callable[[int, dict[str, Any]], TrialResult], trials: int,
               max_minutes: float | None = None, fixed: Mapping[str, Any] | None = None,
               after_trial: Callable[[optuna.Study], None] | None = None, count_running: bool = False,
               catch: tuple[type[BaseException], ...] = (FloatingPointError,)) -> int:
    """Run trials until the study holds `trials` finished ones or `max_minutes` have passed.

    Args:
        study: From `open_study`.
        space: What to sample (`search_space_of`).
        evaluate: `evaluate(trial_number, settings) -> TrialResult`; `settings` are the sampled values plus
            `fixed`.
        trials: Total finished trials wanted in the study (trials already in it count).
        max_minutes: No new trial starts after this many minutes of this call.
        fixed: Settings every trial uses unchanged.
        after_trial: Called after each trial (e.g. to rewrite tables and pictures).
        count_running: Count trials other processes are running against the budget (several workers).
        catch: Errors that fail one trial (recorded) instead of the study.

    Returns:
        How many trials this call ran.
    """
    from optuna.trial import TrialState

    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max_minutes must be positive, got {max_minutes}")
    start, ran = time.monotonic(), 0
    while len(finished_trials(study, running=count_running)) < trials:
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
        trial = study.ask(dict(space))
        settings = {**trial.params, **dict(fixed or {})}
        began = time.monotonic()
        try:
            result = evaluate(trial.number, settings)
        except catch as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            study.tell(trial, state=TrialState.FAIL)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            if not math.isfinite(result.value):
                raise ValueError(f"trial {trial.number} returned a non-finite objective {result.value}")
            trial.set_user_attr("seconds", time.monotonic() - began)
            if result.constraint is not None:
                trial.set_user_attr("constraint", float(result.constraint))
                if hasattr(trial, "set_constraint"):
                    trial.set_constraint("constraint", float(result.constraint))
            for key, value in result.figures.items():
                trial.set_user_attr(key, value)
            study.tell(trial, result.value)
        ran += 1
        if after_trial is not None:
            after_trial(study)
    return ran


# ---- results ---------------------------------------------------------------------------------------------------


def best_trial(study: optuna.Study) -> tuple[FrozenTrial | None, bool]:
    """The feasible complete trial of highest value, and True; or the least infeasible one, and False."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None, False
    violation = lambda t: float(t.user_attrs.get("constraint", 0.0))  # noqa: E731
    feasible = [t for t in complete if violation(t) <= 0]
    if feasible:
        return max(feasible, key=lambda t: (t.value, -t.number)), True
    return min(complete, key=lambda t: (violation(t), -t.value, t.number)), False


def trials_table(study: optuna.Study) -> str:
    """Every trial as CSV: number, state, value, each setting, each figure, seconds."""
    import csv
    import io

    trials = study.get_trials(deepcopy=False)
    params = sorted({key for t in trials for key in t.params})
    attrs = sorted({key for t in trials for key in t.user_attrs})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "state", "value", *params, *attrs])
    for t in trials:
        writer.writerow([t.number, t.state.name.lower(), "" if t.value is None else t.value,
                         *(t.params.get(key, "") for key in params), *(t.user_attrs.get(key, "") for key in attrs)])
    return buffer.getvalue()


def write_trials(study: optuna.Study, directory: str | Path) -> Path:
    """Write `trials.csv` into `directory` (atomically)."""
    path = Path(directory) / TRIALS_FILE
    atomic_write_text(path, trials_table(study))
    return path


def write_yaml(path: str | Path, value: Mapping[str, Any], comment: str = "") -> Path:
    """Write `value` as YAML (atomically), after `comment` lines prefixed with `#`."""
    import yaml

    head = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines())
    atomic_write_text(path, head + yaml.safe_dump(_plain(value), sort_keys=False))
    return Path(path)


def _plain(value: Any) -> Any:
    """Tuples as lists and NumPy scalars as Python numbers, for `yaml.safe_dump`."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value
