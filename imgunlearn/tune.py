"""`imgunlearn tune`: search an I2I unlearning method's settings for your original and your data.

    imgunlearn tune --original runs/demo/original --method noisy_label --trials 16 --out runs/tune \\
        --data.task_args '{"noise_std": 0.1, "downsample": 1}'
    imgunlearn tune --original DIR --config configs/data/synthetic.yaml --method encoder_teacher --out runs/tune2
    imgunlearn unlearn --config configs/data/synthetic.yaml --config configs/trainer/cpu.yaml \\
        --config runs/tune/best.yaml             # the best settings (best.yaml last: its max_steps wins)

Each trial unlearns with settings drawn from the method's `search_space` (Optuna TPE, seeded) and is scored on a
validation split carved from the training forget and retain images; the held-out splits are never read (see
`imgunlearn.tuning_i2i`). The objective is the most forgetting whose retain PSNR stays within `--retain_tolerance`
dB of the original's (give or take `--retain_noise` standard errors of its validation estimate). The study lives in `OUT/study.db`: rerunning the same command resumes it, and a larger
`--trials` extends it. `OUT` holds `best.yaml` (a method config for `imgunlearn unlearn --config`), `trials.csv`,
`tradeoff.png` (every trial's retain change against its forget change, the constraint and the chosen trial),
`summary.json`, `validation_splits.csv` and `config.yaml`.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

from imgunlearn.command import (
    add_device_option,
    add_option,
    add_output_options,
    command_parser,
    config_dict,
    resolve_device,
    run_command,
    save_config,
)
from imgunlearn.data.datamodule import ForgetRetainDataModule

DATA_CLASS = "imgunlearn.data.ForgetRetainDataModule"


def build_parser():
    """The parser of `imgunlearn tune`."""
    paragraphs = __doc__.split("\n\n")
    parser = command_parser("imgunlearn tune", "\n\n".join([paragraphs[0], *paragraphs[2:]]))
    add_option(parser, "original", type=str, required=True, help="saved original model directory (with task.json)")
    add_option(parser, "method", type=str, default="noisy_label", help="registered I2I unlearning method")
    parser.add_subclass_arguments(ForgetRetainDataModule, "data", required=False, default={"class_path": DATA_CLASS},
                                  help="the data, as for `imgunlearn unlearn` (--data.source synthetic|CSV|folder, "
                                       "--data.size, ...; a data config via --config)")
    add_option(parser, "trials", type=int, default=16, help="finished trials the study should hold (budget)")
    add_option(parser, "max_minutes", type=float | None, default=None, help="start no trial after this many minutes")
    add_option(parser, "max_steps", type=int, default=300, help="unlearning steps per trial (the most, with "
                                                                "--min_steps)")
    add_option(parser, "min_steps", type=int | None, default=None,
               help="search the step count between this and --max_steps (default: every trial runs --max_steps)")
    add_option(parser, "fixed", type=dict[str, Any], default={}, help="method settings held fixed, e.g. "
                                                                        "'{\"region\": \"box\"}'")
    add_option(parser, "start_from_defaults", type=bool, default=True,
               help="run the method's shipped settings (its constructor defaults) as the first trial")
    add_option(parser, "retain_tolerance", type=float, default=0.5,
               help="retain PSNR (dB) a trial may lose against the original and stay feasible")
    add_option(parser, "retain_noise", type=float, default=1.0,
               help="standard errors of the validation estimate of the retain change a trial may lose beyond "
                    "--retain_tolerance and stay feasible (0: the tolerance exactly)")
    add_option(parser, "detection_weight", type=float, default=10.0,
               help="with forget boxes: dB of forgetting that one unit of face detection rate is worth")
    add_option(parser, "validation_share", type=float, default=0.2,
               help="share of training forget ids (or images) and retain images held out for validation")
    add_option(parser, "seed", type=int, default=0, help="seed of the sampler, the carving and each trial's method")
    add_output_options(parser)
    add_device_option(parser, default="cpu")
    add_option(parser, "progress", type=bool, default=True, help="print one line per trial")
    return parser


def trainer_device(device: str) -> dict[str, Any]:
    """Lightning's `accelerator` and `devices` for one torch device string: `cuda:1` -> gpu, devices [1]."""
    kind, _, index = device.partition(":")
    accelerator = {"cuda": "gpu"}.get(kind, kind)
    return {"accelerator": accelerator, "devices": [int(index)] if index else 1}


def _task(original: Path, options: dict[str, Any]) -> Any:
    """The original's task; a task given in the data options must be the same one."""
    from imgunlearn.api import load_task
    from imgunlearn.data.tasks import make_task

    saved = load_task(original)
    if options.get("task", "restore") == "restore" and not options.get("task_args"):
        return saved  # not set: the original's
    given = make_task(options["task"], **(options.get("task_args") or {}))
    if given != saved:
        raise ValueError(f"the data's task {given} differs from the task the original was trained for ({saved}); "
                         "leave --data.task unset or give the same one")
    return saved


def main_cfg(cfg: Any, parser: Any) -> int:
    from imgunlearn.methods import METHODS
    from imgunlearn.models import load_model
    from imgunlearn.runs import fail_run, finish_run
    from imgunlearn.tuning import (
        default_settings,
        describe_space,
        open_study,
        open_study_dir,
        run_trials,
        search_space_of,
    )
    from imgunlearn.tuning_i2i import Scorer, TuningDataModule

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
    original_dir = Path(cfg.original)
    if not original_dir.is_dir():
        raise FileNotFoundError(f"original model directory not found: {original_dir}")
    cls = METHODS.get(cfg.method)
    if cfg.min_steps is not None and not 1 <= cfg.min_steps <= cfg.max_steps:
        raise ValueError(f"min_steps must lie in [1, max_steps={cfg.max_steps}], got {cfg.min_steps}")
    if cfg.max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {cfg.max_steps}")
    space = search_space_of(cls, cfg.method, cfg.fixed)
    if cfg.min_steps is not None and cfg.min_steps < cfg.max_steps:
        from optuna.distributions import IntDistribution

        space["max_steps"] = IntDistribution(cfg.min_steps, cfg.max_steps, log=True)
    device = resolve_device(cfg.device)
    data_options = dict(vars(cfg.data.init_args)) if cfg.data.init_args is not None else {}
    data_options["task"], data_options["task_args"] = _task(original_dir, data_options), None
    config = config_dict(parser, cfg)
    config["search_space"] = describe_space(space)
    inputs = [original_dir] + ([data_options["source"]] if data_options.get("source") != "synthetic" else [])
    run = open_study_dir(cfg.out, command="tune", config=config, overwrite=cfg.overwrite, inputs=inputs)
    try:
        started = time.perf_counter()
        data = TuningDataModule(**data_options, validation_share=cfg.validation_share, validation_seed=cfg.seed)
        data.setup("fit")
        original = load_model(original_dir)
        scorer = Scorer(original, data, cfg.retain_tolerance, cfg.detection_weight,
                        data.hparams.eval_batch_size or data.hparams.batch_size, device, cfg.retain_noise)
        _write_records(run.path, data, scorer)
        save_config(parser, cfg, run.path)
        first = {**default_settings(cls, space), "max_steps": cfg.max_steps} if cfg.start_from_defaults else None
        if first is not None and "max_steps" not in space:
            first.pop("max_steps")
        study = open_study(run.path, f"tune-{cfg.method}", cfg.seed, constrained=True,
                           startup_trials=max(3, min(10, cfg.trials // 3)), first=first)
        fixed = {"seed": cfg.seed, **cfg.fixed}

        def evaluate(number: int, settings: dict[str, Any]) -> Any:
            from imgunlearn.api import unlearn

            settings = dict(settings)
            steps = int(settings.pop("max_steps", cfg.max_steps))
            model = unlearn(original, data, method=cfg.method, max_steps=steps, **trainer_device(device),
                            progress=False, **settings)
            return scorer.score(model)

        def after(study: Any) -> None:
            _write_results(run.path, study, cls, cfg, scorer, time.perf_counter() - started)
            if cfg.progress:
                last = study.trials[-1]
                attrs = last.user_attrs
                figures = (f"forget {attrs['forget_change_db']:+.2f} dB, retain {attrs['retain_change_db']:+.2f} dB"
                           if "forget_change_db" in attrs else attrs.get("error", last.state.name.lower()))
                print(f"trial {last.number}: {figures} | {last.params}", flush=True)

        run_trials(study, space, evaluate, cfg.trials, cfg.max_minutes, fixed=fixed, after_trial=after)
        summary = _write_results(run.path, study, cls, cfg, scorer, time.perf_counter() - started)
    except BaseException as error:
        fail_run(run, error)
        raise
    finished = len([t for t in study.trials if t.state.is_finished()])
    if finished >= cfg.trials:
        finish_run(run)
    print(_summary_line(summary, run.path))
    return 0


def _write_records(out: Path, data: Any, scorer: Any) -> None:
    from imgunlearn.data.splits import split_table
    from imgunlearn.io import atomic_write_text, write_json

    named = {"forget_fit": data.splits["forget_train"], "retain_fit": data.splits["retain_train"],
             "forget_validation": data.validation["forget"], "retain_validation": data.validation["retain"]}
    atomic_write_text(out / "validation_splits.csv", split_table(named))
    write_json(out / "validation_original.json", scorer.original, indent=2)


def _write_results(out: Path, study: Any, cls: type, cfg: Any, scorer: Any, seconds: float) -> dict[str, Any]:
    from imgunlearn.io import write_json
    from imgunlearn.tuning import BEST_FILE, best_trial, write_trials, write_yaml
    from imgunlearn.tuning_i2i import method_config, save_tradeoff

    write_trials(study, out)
    best, feasible = best_trial(study)
    save_tradeoff(out / "tradeoff.png", study.trials, cfg.retain_tolerance, best.number if best else None,
                  scorer.faces)
    summary: dict[str, Any] = {"method": cfg.method, "trials": len(study.trials), "seconds_this_call": seconds,
                               "trial_seconds_total": sum(t.user_attrs.get("seconds", 0.0) for t in study.trials),
                               "original_validation": scorer.original, "best": None}
    if best is not None:
        settings = {**best.params, "seed": cfg.seed, **cfg.fixed}
        steps = int(settings.pop("max_steps", cfg.max_steps))
        attrs = best.user_attrs
        note = (f"Tuned by `imgunlearn tune` ({cfg.method}): trial {best.number} of {len(study.trials)}, on the "
                f"validation split carved from the training splits:\nforget {attrs['forget_change_db']:+.2f} dB, "
                f"retain {attrs['retain_change_db']:+.2f} dB"
                + (f", faces detected {attrs['forget_detect_rate']:.0%}" if "forget_detect_rate" in attrs else "")
                + ("" if feasible else f" -- NO trial kept retain within {cfg.retain_tolerance} dB; this is the "
                   "closest") + ".\nUse: imgunlearn unlearn --config DATA.yaml --config TRAINER.yaml --config "
                "best.yaml (best.yaml last).")
        write_yaml(out / BEST_FILE, method_config(cls, settings, cfg.original, steps), note)
        summary["best"] = {"trial": best.number, "feasible": feasible, "value": best.value,
                           "settings": {**settings, "max_steps": steps}, "figures": dict(attrs)}
    write_json(out / "summary.json", summary, indent=2)
    return summary


def _summary_line(summary: dict[str, Any], out: Path) -> str:
    best = summary["best"]
    if best is None:
        return f"no trial finished; study in {out}"
    figures = best["figures"]
    state = "" if best["feasible"] else " (no trial met the retain tolerance; the closest)"
    return (f"best trial {best['trial']} of {summary['trials']}{state}: forget {figures['forget_change_db']:+.2f} dB, "
            f"retain {figures['retain_change_db']:+.2f} dB; wrote {out / 'best.yaml'}, trials.csv, tradeoff.png")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    return run_command("tune", parser, argv, lambda cfg: main_cfg(cfg, parser))
