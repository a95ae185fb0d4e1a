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
