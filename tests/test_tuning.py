"""The tuning core: search spaces, a resumable and extendable study, budget, recovery and the best trial."""

import csv

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from imgunlearn.runs import RunDirectoryError, read_run
from imgunlearn.tuning import (
    TrialResult,
    best_trial,
    default_settings,
    finished_trials,
    open_study,
    open_study_dir,
    run_trials,
    search_space_of,
    write_trials,
)

SPACE = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "target": CategoricalDistribution(["flat", "normal"])}


class Declares:
    search_space = SPACE


def quadratic(number, settings):
    """A cheap objective: best near lr = 1e-3; infeasible for lr > 5e-3."""
    import math

    distance = abs(math.log10(settings["lr"]) + 3)
    return TrialResult(value=-distance + (settings["target"] == "flat"), constraint=settings["lr"] - 5e-3,
                       figures={"distance": distance})


def test_search_space_is_the_declared_one_without_fixed_settings():
    assert search_space_of(Declares, "x") == SPACE
    assert list(search_space_of(Declares, "x", fixed={"target": "flat"})) == ["lr"]
    with pytest.raises(ValueError, match="'plain' declares no search space"):
        search_space_of(object, "plain")
    with pytest.raises(ValueError, match="every searchable setting of 'x' is fixed"):
        search_space_of(Declares, "x", fixed={"lr": 1e-3, "target": "flat"})

    class Bad:
        search_space = {"lr": (1e-4, 1e-2)}

    with pytest.raises(ValueError, match="'lr' is .* not an optuna distribution"):
        search_space_of(Bad, "bad")


def test_a_new_study_starts_from_the_shipped_defaults(tmp_path):
    class Method:
        search_space = {**SPACE, "steps": FloatDistribution(1, 10)}

        def __init__(self, lr: float = 2e-3, target: str = "normal", steps: int = 50, other: int = 1) -> None:
            pass

    class Child(Method):
        def __init__(self, *args, lr: float = 3e-4, **kwargs) -> None:
            super().__init__(*args, lr=lr, **kwargs)

    # the child's own default wins; a default the space cannot produce (steps 50 > 10) is left to the sampler
    assert default_settings(Child, Child.search_space) == {"lr": 3e-4, "target": "normal"}
    study = open_study(tmp_path, "s", seed=0, first=default_settings(Child, SPACE))
    run_trials(study, SPACE, quadratic, trials=2)
    assert study.trials[0].params == {"lr": 3e-4, "target": "normal"}
    again = open_study(tmp_path, "s", seed=0, first={"lr": 1e-3, "target": "flat"})  # only for a new study
    run_trials(again, SPACE, quadratic, trials=3)
    assert again.trials[2].params != {"lr": 1e-3, "target": "flat"}


def test_study_resumes_and_extends_keeping_earlier_trials(tmp_path):
    study = open_study(tmp_path, "s", seed=3, constrained=True, startup_trials=2)
    assert run_trials(study, SPACE, quadratic, trials=3) == 3
    first = [(t.params, t.value) for t in study.trials]

    again = open_study(tmp_path, "s", seed=3, constrained=True, startup_trials=2)
    assert run_trials(again, SPACE, quadratic, trials=3) == 0  # budget already met
    assert run_trials(again, SPACE, quadratic, trials=5) == 2
    assert [(t.params, t.value) for t in again.trials[:3]] == first
    assert len(again.trials) == 5
    # a resumed sampler draws new points instead of replaying the first ones
    assert again.trials[3].params != first[0][0]


def test_trial_left_running_by_a_killed_process_is_failed_and_rerun(tmp_path):
    study = open_study(tmp_path, "s", seed=0)
    study.ask(SPACE)  # a process died inside this trial
    lost = study.trials[0].params
    reopened = open_study(tmp_path, "s", seed=0)
    assert reopened.trials[0].state.name == "FAIL"
    run_trials(reopened, SPACE, quadratic, trials=2)
    assert reopened.trials[1].params == lost  # its settings ran first
    assert [t.state.name for t in reopened.trials] == ["FAIL", "COMPLETE"]


def test_failing_trial_is_recorded_and_counts_against_the_budget(tmp_path):
    def explode(number, settings):
        if number == 0:
            raise FloatingPointError("non-finite loss")
        return quadratic(number, settings)

    study = open_study(tmp_path, "s", seed=0)
    assert run_trials(study, SPACE, explode, trials=2) == 2
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert "non-finite loss" in study.trials[0].user_attrs["error"]
    with pytest.raises(RuntimeError):
        run_trials(study, SPACE, lambda n, s: (_ for _ in ()).throw(RuntimeError("bug")), trials=3)
    assert study.trials[-1].state.name == "FAIL"


def test_best_trial_is_feasible_first_then_least_infeasible(tmp_path):
    study = open_study(tmp_path, "s", seed=0)
    for lr, target in ((1e-3, "normal"), (6e-3, "flat"), (2e-3, "normal")):
        study.enqueue_trial({"lr": lr, "target": target})
    run_trials(study, SPACE, quadratic, trials=3)
    best, feasible = best_trial(study)
    # trial 1 has the highest value but breaks the constraint (lr > 5e-3)
    assert max(study.trials, key=lambda t: t.value).number == 1
    assert feasible and best.number == 0

    (tmp_path / "other").mkdir()
    other = open_study(tmp_path / "other", "s", seed=0)
    for lr in (9e-3, 6e-3):
        other.enqueue_trial({"lr": lr, "target": "normal"})
    run_trials(other, SPACE, quadratic, trials=2)
    best, feasible = best_trial(other)
    assert not feasible and best.params["lr"] == 6e-3  # the smaller violation


def test_trials_table_lists_settings_figures_and_states(tmp_path):
    study = open_study(tmp_path, "s", seed=0)
    run_trials(study, SPACE, quadratic, trials=2)
    rows = list(csv.DictReader(write_trials(study, tmp_path).open()))
    assert [r["trial"] for r in rows] == ["0", "1"] and {r["state"] for r in rows} == {"complete"}
    assert {"lr", "target", "distance", "constraint", "seconds", "value"} <= set(rows[0])
    assert float(rows[0]["lr"]) == study.trials[0].params["lr"]


def test_study_directory_resumes_with_another_budget_only(tmp_path):
    out = tmp_path / "study"
    config = {"method": "m", "trials": 2, "max_minutes": None}
    run = open_study_dir(out, command="tune", config=config)
    (out / "study.db").write_bytes(b"")  # a study was stored
    from imgunlearn.runs import finish_run

    finish_run(run)
    extended = open_study_dir(out, command="tune", config={**config, "trials": 8, "max_minutes": 5.0})
    assert extended.resumed and read_run(out)["status"] == "running"
    with pytest.raises(RunDirectoryError, match="same settings"):
        open_study_dir(out, command="tune", config={**config, "method": "other"})
    assert open_study_dir(out, command="tune", config={**config, "method": "other"}, overwrite=True).resumed is False
    assert not (out / "study.db").exists()


def test_budget_and_time_limit_are_checked(tmp_path):
    study = open_study(tmp_path, "s", seed=0)
    with pytest.raises(ValueError, match="trials must be >= 1, got 0"):
        run_trials(study, SPACE, quadratic, trials=0)
    with pytest.raises(ValueError, match="max_minutes must be positive, got -1"):
        run_trials(study, SPACE, quadratic, trials=1, max_minutes=-1)
    assert finished_trials(study) == []
