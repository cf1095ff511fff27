import personalign


def test_every_export_resolves():
    for name in personalign.__all__:
        assert getattr(personalign, name) is not None, name


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        personalign.nope  # noqa: B018
