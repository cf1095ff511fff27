import pytest

from personalign.registry import Registry, UnknownNameError


def test_unknown_name_lists_available():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    reg.register("b", 2)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'c'; available: a, b"):
        reg.get("c")


def test_lazy_entry_imported_on_first_use():
    reg: Registry[object] = Registry("thing")
    reg.register("join", "os.path:join")
    import os.path

    assert reg.get("join") is os.path.join
    assert "join" in reg and list(reg) == ["join"]


def test_decorator_and_duplicate():
    reg: Registry[object] = Registry("fn")

    @reg.register("f")
    def f():
        """Does f."""

    assert reg.get("f") is f and reg.help("f") == "Does f."
    with pytest.raises(ValueError):
        reg.register("f", lambda: None)
