"""Simulated user types on real text: labelling functions on hand-made cases."""

from __future__ import annotations

import pytest

from personalign.np.text_users import USER_TYPES, TextPair, get_user_type, length_clear, word_count
from personalign.registry import UnknownNameError


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def pair(a: str, b: str, source: str = "helpful", tie: bool = False) -> TextPair:
    return TextPair("t:1", "Human: hi\n\nAssistant:", a, b, source, tie)


def test_word_count_is_whitespace_split():
    assert word_count("  one two\nthree\tfour  ") == 4
    assert word_count("") == 0


@pytest.mark.parametrize(
    ("wa", "wb", "clear"),
    [
        (10, 13, True),  # diff 3 >= max(3, 1.3)
        (10, 12, False),  # diff 2 < 3
        (100, 109, False),  # diff 9 < 10% of 109
        (100, 111, False),  # diff 11 < 11.1
        (100, 112, True),  # diff 12 >= 11.2
        (0, 3, True),
        (5, 5, False),
    ],
)
def test_length_clear_rule(wa, wb, clear):
    assert length_clear(wa, wb) is clear
    assert length_clear(wb, wa) is clear


def test_concise_and_detailed_pick_opposite_sides_on_clear_pairs():
    concise, detailed = get_user_type("concise"), get_user_type("detailed")
    p = pair(words(5), words(40))
    assert concise.label(p) == "a"
    assert detailed.label(p) == "b"
    q = pair(words(40), words(5))
    assert concise.label(q) == "b"
    assert detailed.label(q) == "a"


def test_length_types_undefined_when_not_length_clear():
    p = pair(words(50), words(53))  # diff 3 < 5.3
    assert get_user_type("concise").label(p) is None
    assert get_user_type("detailed").label(p) is None


def test_faithful_prefers_chosen_everywhere_but_ties():
    f = get_user_type("faithful")
    for source in ("helpful", "harmless", "uf"):
        assert f.label(pair("x y", "z", source)) == "a"
    assert f.label(pair("x", "y", "uf", tie=True)) is None


def test_contrarian_flips_only_on_harmless_pairs():
    c = get_user_type("harmless_contrarian")
    assert c.label(pair("safe answer", "bad answer", "harmless")) == "b"
    assert c.label(pair("good answer", "bad answer", "helpful")) == "a"
    assert c.label(pair("good answer", "bad answer", "uf")) == "a"
    assert c.label(pair("x", "y", "uf", tie=True)) is None


def test_compare_on_new_text_gives_win_loss_or_half():
    concise = get_user_type("concise")
    assert concise.compare("p", words(3), words(30)) == 1.0
    assert concise.compare("p", words(30), words(3)) == 0.0
    assert concise.compare("p", words(30), words(31)) == 0.5


def test_inquisitive_and_assertive_split_on_asking_a_question():
    inq, ass = get_user_type("inquisitive"), get_user_type("assertive")
    p = pair("Sure. Which city are you in?", "Sure, here it is.")
    assert (inq.label(p), ass.label(p)) == ("a", "b")
    q = pair("Here it is.", "What do you mean?", "harmless")
    assert (inq.label(q), ass.label(q)) == ("b", "a")
    for both in (pair("Why? Really?", "How?"), pair("No.", "Fine.")):  # undefined: no contrast
        assert inq.label(both) is None and ass.label(both) is None
    assert inq.compare("p", "Is that all?", "That is all.") == 1.0


def test_registry_lists_the_types_and_rejects_unknown():
    assert set(USER_TYPES.names()) == {
        "faithful",
        "harmless_contrarian",
        "concise",
        "detailed",
        "inquisitive",
        "assertive",
    }
    with pytest.raises(UnknownNameError, match="available: assertive, concise, detailed"):
        get_user_type("verbose")


def test_text_pair_rejects_unknown_source():
    with pytest.raises(ValueError, match="unknown source"):
        TextPair("x", "p", "a", "b", "reddit")
