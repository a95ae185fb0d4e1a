import pytest

from imgunlearn.registry import Registry


def test_register_get_and_list_with_patterns():
    reg = Registry("widget")

    @reg.register()
    def alpha_tiny():
        return "a"

    @reg.register("beta_small")
    def make_beta():
        return "b"

    assert reg.get("alpha_tiny")() == "a"
    assert reg.get("beta_small")() == "b"
    assert reg.list() == ["alpha_tiny", "beta_small"]
    assert reg.list("*_tiny") == ["alpha_tiny"]
    assert "beta_small" in reg and "make_beta" not in reg
    assert len(reg) == 2


def test_unknown_and_duplicate_names_are_clear_errors():
    reg = Registry("widget")
    reg.register("one")(lambda: 1)
    with pytest.raises(ValueError, match=r"unknown widget 'two'; known: one"):
        reg.get("two")
    with pytest.raises(ValueError, match=r"widget 'one' is already registered"):
        reg.register("one")(lambda: 2)


def test_entries_that_are_not_factories_and_mapping_access():
    reg = Registry("spec")
    reg.update({"b": 2, "a": 1})
    reg.add("c", 3)
    assert reg["a"] == 1 and list(reg) == ["b", "a", "c"] and reg.list() == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"spec 'a' is already registered"):
        reg.update({"a": 4})
    with pytest.raises(ValueError, match=r"unknown spec 'z'"):
        reg["z"]


def test_every_registry_lives_in_one_module_and_fills_itself_on_first_lookup():
    from imgunlearn import registry

    assert "unet_tiny" in registry.MODELS and "noisy_label" in registry.METHODS
    assert "cnn_tiny" in registry.CLASSIFIERS and "scrub" in registry.CLASSIFIER_METHODS
    assert "psnr" in registry.METRICS and registry.METRICS["fid"].min_images == 2
    from imgunlearn.challenge.methods import CLASSIFIER_METHODS
    from imgunlearn.challenge.models import CLASSIFIERS
    from imgunlearn.evaluation.metric_set import METRICS
    from imgunlearn.methods import METHODS

    assert CLASSIFIER_METHODS is registry.CLASSIFIER_METHODS and CLASSIFIERS is registry.CLASSIFIERS
    assert METRICS is registry.METRICS and METHODS is registry.METHODS
    assert registry.list_methods("*_label") == ["noisy_label", "retain_label"]
