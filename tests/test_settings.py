"""One source of truth for method settings: constructor defaults, configs/method/*.yaml and the demo agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imgunlearn.demo import method_settings
from imgunlearn.models.base import create_model
from imgunlearn.registry import METHODS

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "method"


def plain(value):
    return list(value) if isinstance(value, tuple) else value


def built_settings(name: str) -> dict:
    """The hyperparameters a method instance records when built with no settings (what really runs)."""
    method = METHODS.get(name)(create_model("unet_tiny"))
    return {k: plain(v) for k, v in method.hparams.items()}


@pytest.mark.parametrize("name", METHODS.list())
def test_method_config_states_the_class_defaults(name: str) -> None:
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    stated = config["model"]["init_args"]
    assert config["model"]["class_path"].rsplit(".", 1)[1] == METHODS.get(name).__name__
    built = built_settings(name)
    differing = {k: (v, built.get(k, "<not a setting>")) for k, v in stated.items() if plain(v) != built.get(k)}
    assert not differing, f"configs/method/{name}.yaml disagrees with {name}'s defaults (config, class): {differing}"
    assert {"lr", "retain_alpha"} <= set(stated), "a config states at least its learning rate and retain weight"
    assert "measured" in (CONFIGS / f"{name}.yaml").read_text(), "a config says where its values were measured"


@pytest.mark.parametrize("name", METHODS.list())
def test_the_demo_runs_each_method_with_its_defaults(name: str) -> None:
    assert method_settings(name) == built_settings(name)


def test_noisy_label_defaults_are_the_demo_measurements() -> None:
    settings = built_settings("noisy_label")
    assert {k: settings[k] for k in ("forget_target", "forget_alpha", "retain_alpha", "lr", "region")} == {
        "forget_target": "flat", "forget_alpha": 2.0, "retain_alpha": 16.0, "lr": 3e-4, "region": "box"}
