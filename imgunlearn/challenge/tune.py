"""`imgunlearn challenge tune`: search a classifier unlearning method's settings against the challenge's score,
on a forget set of other people.

    imgunlearn challenge tune --original ORIGINAL --method reset_finetune --trials 20 --n_models 8 --out runs/tune
    imgunlearn challenge run --config runs/tune/best.yaml --original ORIGINAL --out POOL --n_models 32

The reported forget set is never tuned on, nor read. From the original's splits the command draws a second,
person-disjoint forget split among the retain people (`--tune_forget_people`, as many as the reported forget set
by default; `--split_seed`): their retain images are the tuning forget set, the rest of the retain set the tuning
retain set, and their val / test images are dropped. A tuning original is trained with the original's recipe on
the reported retain set only (so it never saw the reported forget people either) and written to
`OUT/original` as a train-original directory. Each trial is a pool run (`imgunlearn challenge run`, so `--jobs`
applies) of N unlearned models against N retrained ones, cached once in `OUT/pool/cache`; its objective is the
pool's final score, feasible when the unlearning time stays within the challenge's cutoff (20% of retraining).

`OUT` holds `study.db` (rerun to resume; a larger `--trials` extends it), `trials.csv`, `scores.png` (score per
trial), `best.yaml` (options for `imgunlearn challenge run --config`), `summary.json`, `original/` and `pool/`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

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

ORIGINAL_DIR = "original"
POOL_DIR = "pool"


def build_parser():
    """The parser of `imgunlearn challenge tune`."""
    paragraphs = __doc__.split("\n\n")
    p = command_parser("imgunlearn challenge tune", "\n\n".join([paragraphs[0], *paragraphs[2:]]))
    add_option(p, "original", type=str, required=True, help="output directory of `imgunlearn challenge train-original`")
    add_option(p, "method", type=str, required=True, help="registered classifier unlearning method")
    add_option(p, "trials", type=int, default=16, help="finished trials the study should hold (budget)")
    add_option(p, "max_minutes", type=float | None, default=None, help="start no trial after this many minutes")
    add_option(p, "n_models", type=int, default=8, help="pool size N of each trial")
    add_option(p, "fixed", type=dict[str, Any], default={}, help="method settings held fixed")
    add_option(p, "start_from_defaults", type=bool, default=True,
               help="run the method's shipped settings (its constructor defaults) as the first trial")
    add_option(p, "tune_forget_people", type=int | None, default=None,
               help="people in the tuning forget set (default: as many as the reported forget set)")
    add_option(p, "split_seed", type=int, default=1, help="seed of the tuning forget people's draw")
    add_option(p, "seed", type=int, default=0, help="seed of the sampler and base seed of every pool member")
    add_option(p, "batch_size", type=int, default=64, help="batch size of the unlearning loaders")
    add_option(p, "pool", type=str | None, default=None,
               help="pool directory of the trials (default: OUT/pool); share one between tuning runs of several "
                    "methods of the same original to train the tuning retrained pool once")
    add_option(p, "cache", type=str | None, default=None, help="retrained-pool cache (default: POOL/cache)")
    add_option(p, "jobs", type=int, default=1, help="run each trial's pool as this many parallel shard processes")
    add_option(p, "shard", type=str | None, default=None,
               help="i/n or auto (torchrun / SLURM): this process is shard i of n sharing OUT; shard 0 draws and "
                    "scores the trials, every shard makes its part of each trial's pool")
    add_option(p, "shard_timeout", type=float | None, default=None,
               help="minutes a shard waits for the others before giving up (default: no limit)")
    add_option(p, "threads", type=int | None, default=None, help="torch CPU threads per process")
    add_output_options(p)
    add_device_option(p, default="cpu")
    add_option(p, "progress", type=bool, default=True, help="print one line per trial")
    return p


# ---- the tuning split ------------------------------------------------------------------------------------------


def tuning_splits(splits: Any, people: int | None = None, seed: int = 1) -> Any:
    """A person-disjoint forget split drawn among the retain people of `splits` (a `FaceSplits`).

    The reported forget people appear nowhere in it; the tuning people's val / test images are dropped, as the
    reported forget people have none.

    Raises:
        ValueError: Too few retain people, or the result would touch the reported forget set.
    """
    from imgunlearn.challenge.data import FaceSplits

    ds = splits.dataset
    if ds.person_ids is None:
        raise ValueError("tuning needs person ids to draw a person-disjoint forget split")
    retain = splits.indices["retain"]
    candidates = np.unique(ds.person_ids[retain])
    count = len(splits.forget_people) if people is None else int(people)
    if not 1 <= count < len(candidates):
        raise ValueError(f"cannot draw {count} tuning forget people from the {len(candidates)} retain people "
                         "(at least one must remain)")
    chosen = np.sort(np.random.default_rng(seed).choice(candidates, size=count, replace=False))
    tuned = np.isin(ds.person_ids, chosen)
    indices = {"forget": retain[tuned[retain]], "retain": retain[~tuned[retain]]}
    for name in ("val", "test"):
        indices[name] = splits.indices[name][~tuned[splits.indices[name]]]
    indices = {k: np.sort(v).astype(np.int64) for k, v in indices.items()}
    indices["train"] = np.sort(np.concatenate([indices["retain"], indices["forget"]]))
    result = FaceSplits(ds, indices, [p.item() if hasattr(p, "item") else p for p in chosen], seed)
    check_disjoint(result, splits)
    return result


def check_disjoint(tuning: Any, reported: Any) -> None:
    """Refuse a tuning split that shares an image or a person with the reported forget set, or equals it."""
    forget = np.asarray(reported.indices["forget"], dtype=np.int64)
    tuned_forget = np.asarray(tuning.indices["forget"], dtype=np.int64)
    if np.array_equal(np.sort(forget), np.sort(tuned_forget)):
        raise ValueError("the tuning forget split equals the reported forget split; tuning on it is refused")
    used = np.concatenate([np.asarray(v, dtype=np.int64) for v in tuning.indices.values()])
    shared = np.intersect1d(used, forget)
    if len(shared):
        raise ValueError(f"the tuning split holds {len(shared)} images of the reported forget set (e.g. index "
                         f"{shared[0]}); tuning on them is refused")
    people = set(tuning.forget_people) & set(reported.forget_people)
    if people:
        raise ValueError(f"the tuning forget people include reported forget people {sorted(people)[:5]}; refused")


def prepare_tuning_original(out: Path, original: Path, people: int | None, seed: int) -> Path:
    """Write (or reuse) `out/original`: the tuning split and a model trained on it with the original's recipe."""
    from imgunlearn.challenge.commands import load_data, read_original
    from imgunlearn.challenge.data import read_splits
    from imgunlearn.challenge.models import save_classifier
    from imgunlearn.challenge.pool_commands import Recipe
    from imgunlearn.challenge.training import accuracy
    from imgunlearn.io import write_json
    from imgunlearn.runs import is_complete, open_run

    config, _ = read_original(original)
    dataset = load_data(config["data"])
    reported = read_splits(original, dataset)
    tuning = tuning_splits(reported, people, seed)
    target = out / ORIGINAL_DIR
    record = {"original": str(original.resolve()), "tune_forget_people": people, "split_seed": seed}
    if is_complete(target):
        saved = json.loads((target / "config.json").read_text()).get("tuning")
        kept = read_splits(target, dataset)
        if saved == record and all(np.array_equal(kept.indices[k], tuning.indices[k]) for k in tuning.indices):
            check_disjoint(kept, reported)
            return target
    recipe = Recipe(model=config["model"], epochs=config["epochs"], lr=config["lr"],
                    weight_decay=config["weight_decay"], batch_size=config["batch_size"])
    with open_run(target, command="challenge tune-original", config=record, overwrite=True) as run:
        model = recipe.train(tuning.subset("train"), tuning.subset("val"), dataset.num_groups, int(config.get("seed", 0)))
        save_classifier(model, run.work / "model")
        tuning.write_splits(run.work)
        from torch.utils.data import DataLoader

        metrics = {f"{name}_acc": accuracy(model, DataLoader(tuning.subset(name), batch_size=256))
                   for name in ("retain", "forget", "val", "test")}
        write_json(run.work / "metrics.json", metrics)
        write_json(run.work / "config.json", {**config, "out": str(target), "tuning": record})
    return target


def check_pool(pool: Path, reported_original: Path, tuning_original: Path) -> None:
    """Refuse a pool directory built from the reported original (its forget split is the reported one) or from
    any other split than the tuning one."""
    from imgunlearn.challenge.models import load_classifier
    from imgunlearn.challenge.pool import POOL_MANIFEST, hash_state_dict, read_manifest

    if not (pool / POOL_MANIFEST).is_file():
        return
    manifest = read_manifest(pool)
    if manifest.get("original_hash") == hash_state_dict(load_classifier(reported_original / "model")):
        raise ValueError(f"pool {pool} was built from the reported original {reported_original}: its forget split "
                         "is the reported one, which tuning may never score on; choose another --out")
    if manifest.get("original_hash") != hash_state_dict(load_classifier(tuning_original / "model")):
        raise ValueError(f"pool {pool} was built from another original than the tuning one in {tuning_original}; "
                         "choose another --out")


# ---- the command -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    return run_command("challenge tune", parser, argv, lambda cfg: _tune(parser, cfg))


def _tune(parser: Any, cfg: Any) -> int:
    from imgunlearn.challenge.methods.base import CLASSIFIER_METHODS
    from imgunlearn.runs import fail_run, finish_run
    from imgunlearn.tuning import (
        default_settings,
        describe_space,
        open_study,
        open_study_dir,
        run_trials,
        search_space_of,
    )

    original = Path(cfg.original)
    if not original.is_dir():
        raise FileNotFoundError(f"original directory not found: {original}")
    if cfg.n_models < 1 or cfg.jobs < 1:
        raise ValueError(f"n_models and jobs must be >= 1, got {cfg.n_models} and {cfg.jobs}")
    from imgunlearn.challenge.pool import resolve_shard
    from imgunlearn.challenge.tune_shards import follow, mark_lead

    cls = CLASSIFIER_METHODS.get(cfg.method)
    space = search_space_of(cls, cfg.method, cfg.fixed)
    device = resolve_device(cfg.device)
    if cfg.jobs > 1 and cfg.shard is not None:
        raise ValueError("--jobs runs each trial's shards itself; do not combine it with --shard")
    shard = resolve_shard(cfg.shard)
    study_name = f"challenge-tune-{cfg.method}"
    out = Path(cfg.out)
    pool = Path(cfg.pool) if cfg.pool else out / POOL_DIR
    if shard[0] != 0:  # a follower: the lead manages the directory, the study and the scores
        tuning_original = out / ORIGINAL_DIR
        follow(out, study_name, cfg.trials, lambda number, settings: _trial(
            cfg, pool, tuning_original, number, {**settings, **cfg.fixed}, device, shard, score=False),
            cfg.shard_timeout, pool)
        return 0
    config = {**config_dict(parser, cfg), "search_space": describe_space(space)}
    run = open_study_dir(cfg.out, command="challenge tune", config=config, overwrite=cfg.overwrite, inputs=[original])
    try:
        started = time.perf_counter()
        if shard[1] > 1:
            mark_lead(out, "running")
        tuning_original = prepare_tuning_original(out, original, cfg.tune_forget_people, cfg.split_seed)
        check_pool(pool, original, tuning_original)
        save_config(parser, cfg, out)
        study = open_study(out, study_name, cfg.seed, constrained=True,
                           startup_trials=max(3, min(10, cfg.trials // 3)),
                           first=default_settings(cls, space) if cfg.start_from_defaults else None)

        def evaluate(number: int, settings: dict[str, Any]) -> Any:
            return _trial(cfg, pool, tuning_original, number, settings, device, shard)

        def after(study: Any) -> None:
            _write_results(out, study, cfg, time.perf_counter() - started)
            if cfg.progress:
                last = study.trials[-1]
                attrs = last.user_attrs
                shown = (f"final {attrs['final_score']:.4f}, forget {attrs['forget_score']:.4f}, time ratio "
                         f"{attrs['time_ratio']:.2f}" if "final_score" in attrs else attrs.get("error", "failed"))
                print(f"trial {last.number}: {shown} | {last.params}", flush=True)

        run_trials(study, space, evaluate, cfg.trials, cfg.max_minutes, fixed=cfg.fixed, after_trial=after)
        summary = _write_results(out, study, cfg, time.perf_counter() - started)
    except BaseException as error:
        fail_run(run, error)
        raise
    finally:
        if shard[1] > 1:
            mark_lead(out, "done")
    if len([t for t in study.trials if t.state.is_finished()]) >= cfg.trials:
        finish_run(run)
    best = summary["best"]
    print("no trial finished" if best is None else
          f"best trial {best['trial']} of {summary['trials']}: final score {best['figures']['final_score']:.4f} on "
          f"the tuning forget set; wrote {out / 'best.yaml'}, trials.csv, scores.png")
    return 0


def trial_name(method: str, number: int) -> str:
    """What trial `number`'s models are filed under in the pool."""
    return f"tune-{method}-{number:04d}"


def _trial(cfg: Any, pool: Path, tuning_original: Path, number: int, settings: dict[str, Any], device: str,
           shard: tuple[int, int] = (0, 1), score: bool = True) -> Any:
    """One pool run (this process's shard of it) of the method with `settings` on the tuning split, scored when
    `score` (after waiting for the other shards' members)."""
    from imgunlearn.challenge.pool import TIME_CUTOFF, score_pool
    from imgunlearn.challenge.pool_commands import run_main
    from imgunlearn.tuning import TrialResult

    name = trial_name(cfg.method, number)
    argv = ["--original", str(tuning_original), "--out", str(pool), "--method", cfg.method,
            "--hyperparameters", json.dumps(settings), "--name", name, "--n_models", str(cfg.n_models),
            "--seed", str(cfg.seed), "--batch_size", str(cfg.batch_size), "--jobs", str(cfg.jobs),
            "--device", device, "--no_progress"]
    if cfg.threads is not None:
        argv += ["--threads", str(cfg.threads)]
    if cfg.cache is not None:
        argv += ["--cache", str(cfg.cache)]
    if shard[1] > 1:
        argv += ["--shard", f"{shard[0]}/{shard[1]}"]
    if run_main(argv) != 0:
        raise RuntimeError(f"trial {number}: `imgunlearn challenge run {' '.join(argv)}` failed")
    if not score:
        return None
    if shard[1] > 1:
        from imgunlearn.challenge.tune_shards import wait_for_pool

        wait_for_pool(pool, name, cfg.n_models, cfg.shard_timeout)
    score = score_pool(pool, [name], cfg.n_models, write=True, report=False)[name]
    figures = {key: float(score[key]) for key in ("final_score", "forget_score", "time_ratio")}
    for key in ("retain_acc", "test_acc", "forget_acc"):
        figures[key] = float(score[key]["unlearned"])
    return TrialResult(value=score["final_score"], constraint=score["time_ratio"] - TIME_CUTOFF, figures=figures)


def _write_results(out: Path, study: Any, cfg: Any, seconds: float) -> dict[str, Any]:
    from imgunlearn.io import write_json
    from imgunlearn.tuning import BEST_FILE, best_trial, write_trials, write_yaml

    write_trials(study, out)
    best, feasible = best_trial(study)
    save_scores(out / "scores.png", study.trials, best.number if best else None)
    summary: dict[str, Any] = {"method": cfg.method, "trials": len(study.trials), "seconds_this_call": seconds,
                               "best": None}
    if best is not None:
        settings = {**best.params, **cfg.fixed}
        attrs = best.user_attrs
        note = (f"Tuned by `imgunlearn challenge tune` ({cfg.method}): trial {best.number} of {len(study.trials)}, "
                f"N = {cfg.n_models}, on a tuning forget set of other people:\nfinal score {attrs['final_score']:.4f}, "
                f"forget score {attrs['forget_score']:.4f}, time ratio {attrs['time_ratio']:.2f}"
                + ("" if feasible else " -- NO trial met the time cutoff; this is the closest")
                + ".\nUse: imgunlearn challenge run --config best.yaml --original ORIGINAL --out POOL --n_models N")
        write_yaml(out / BEST_FILE, {"method": cfg.method, "hyperparameters": settings, "name": f"{cfg.method}_tuned"},
                   note)
        summary["best"] = {"trial": best.number, "feasible": feasible, "settings": settings, "figures": dict(attrs)}
    write_json(out / "summary.json", summary, indent=2)
    return summary


def save_scores(path: Path, trials: list[Any], chosen: int | None) -> Path:
    """Final and forget score of every trial, the chosen one marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from imgunlearn.io import atomic_write_bytes

    fig = Figure(figsize=(6.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    done = [t for t in trials if "final_score" in t.user_attrs]
    numbers = [t.number for t in done]
    ax.plot(numbers, [t.user_attrs["final_score"] for t in done], "o-", color="tab:blue", label="final score")
    ax.plot(numbers, [t.user_attrs["forget_score"] for t in done], "s--", color="tab:orange", alpha=0.7,
            label="forget score")
    best = [t for t in done if t.number == chosen]
    if best:
        ax.scatter([chosen], [best[0].user_attrs["final_score"]], marker="*", s=260, facecolor="none",
                   edgecolor="black", linewidths=1.5, label=f"chosen (trial {chosen})", zorder=4)
    ax.set_xlabel("trial")
    ax.set_ylabel("score on the tuning forget set")
    ax.set_title("Challenge score per tuning trial", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=110))
    return path
