"""Config, memory ordering/dedup/top-L, candidate parsing and validation, seeds, prompts."""

from __future__ import annotations

import hashlib

import pytest

from personalign.data.types import Profile
from personalign.fermi.candidates import parse_candidates, validate_candidate
from personalign.fermi.config import FermiConfig
from personalign.fermi.memory import ascending, sort_key, update_memory
from personalign.fermi.prompts import NEUTRAL_SEED, PromptSpec, normalize_prompt, profile_seed, seed_specs
from personalign.fermi.seeding import derive_seed

from .helpers import scored

# -- config -----------------------------------------------------------------------------------


def test_named_configs_and_hash():
    default, faithful, small = (FermiConfig.named(n) for n in ("default", "faithful", "small_model"))
    assert (default.T, default.K, default.L, default.n_neighbors) == (10, 4, 5, 3)
    assert not faithful.use_soft and not faithful.insert_opinions and not faithful.uses_ext
    assert small.K == 8 and small.small_model_mode and small.insert_opinions and small.uses_ext
    assert len({default.config_hash(), faithful.config_hash(), small.config_hash()}) == 3
    assert FermiConfig.named("default").config_hash() == default.config_hash()  # stable
    assert FermiConfig.named("small_model", K=2).K == 2
    assert FermiConfig.from_dict(small.to_dict()) == small


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown Fermi config 'big'; available: default, faithful"):
        FermiConfig.named("big")
    with pytest.raises(ValueError, match="unknown FermiConfig field"):
        FermiConfig.from_dict({"Q": 3})
    with pytest.raises(ValueError, match="invalid FermiConfig value for T"):
        FermiConfig(T=0)


def test_derive_seed_is_stable_and_field_sensitive():
    a = derive_seed(0, "opinionqa", "u1", "candidates", 2, 0)
    assert a == derive_seed(0, "opinionqa", "u1", "candidates", 2, 0)
    digest = hashlib.sha256(b"0\x1fopinionqa\x1fu1\x1fcandidates\x1f2\x1f0").digest()
    assert a == int.from_bytes(digest[:8], "big") >> 1  # sha256, never the salted hash()
    others = {
        derive_seed(1, "opinionqa", "u1", "candidates", 2, 0),
        derive_seed(0, "globalopinionqa", "u1", "candidates", 2, 0),
        derive_seed(0, "opinionqa", "u2", "candidates", 2, 0),
        derive_seed(0, "opinionqa", "u1", "other", 2, 0),
        derive_seed(0, "opinionqa", "u1", "candidates", 3, 0),
        derive_seed(0, "opinionqa", "u1", "candidates", 2, 1),
    }
    assert a not in others and len(others) == 6


# -- prompts ----------------------------------------------------------------------------------


def test_seeds_skip_unknown_fields():
    p = Profile(attributes={"Party": "Democrat", "Income": "Unknown", "Age": "nan", "Region": "South"})
    s1 = profile_seed(p)
    assert s1 == (
        "You are answering a survey as the person described here. Party: Democrat; Region: South. "
        "Answer as this person would."
    )
    specs = seed_specs(p, ("profile", "neutral"))
    assert [s.origin for s in specs] == ["seed:profile", "seed:neutral"] and specs[1].text == NEUTRAL_SEED
    assert "described here. Answer" in profile_seed(Profile())


def test_normalize_prompt():
    assert normalize_prompt("  You are, a LIBERAL!\n\tvoter. ") == "you are a liberal voter"
    assert PromptSpec("You are x.").key != PromptSpec("You are x.", opinions=(1,)).key


# -- memory -----------------------------------------------------------------------------------


def test_memory_orders_by_acc_then_soft_then_earlier_birth():
    a = scored("a", 0.6, -1.0, birth=0)
    b = scored("b", 0.6, -0.5, birth=1)  # same acc, better soft
    c = scored("c", 0.6, -0.5, birth=2)  # same acc and soft, younger
    d = scored("d", 0.8, -3.0, birth=3)
    mem = update_memory([], [a, b, c, d], L=10)
    assert [s.text for s in mem] == ["d", "b", "c", "a"]
    faithful = update_memory([], [a, b, c, d], L=10, use_soft=False)
    assert [s.text for s in faithful] == ["d", "a", "b", "c"]  # (acc, -birth)
    assert [s.text for s in ascending(mem)] == ["a", "c", "b", "d"]
    assert sort_key(b) > sort_key(c) > sort_key(a)


def test_memory_top_l_and_dedup():
    old = [scored("You are a liberal.", 0.4, birth=0), scored("Be brief.", 0.2, birth=1)]
    new = [
        scored("you are a LIBERAL", 0.5, birth=2),  # same key as birth 0, better: replaces it
        scored("x1", 0.3, birth=3),
        scored("x2", 0.1, birth=4),
    ]
    mem = update_memory(old, new, L=3)
    assert [s.birth for s in mem] == [2, 3, 1]
    assert len({s.key for s in mem}) == 3


# -- candidates -------------------------------------------------------------------------------


def test_parse_tags_first_then_brackets_then_single_paragraph():
    assert parse_candidates("junk <prompt> One. </prompt> x <PROMPT>Two</prompt> [ignored]") == [
        "One.",
        "Two",
    ]
    assert parse_candidates("<prompt>unclosed after a stop string") == ["unclosed after a stop string"]
    assert parse_candidates("<prompt>a<prompt>b</prompt>") == ["a", "b"]
    assert parse_candidates("Here: [You are one.] and [You are two.]") == ["You are one.", "You are two."]
    assert parse_candidates("  You are a single paragraph\nover two lines.  ") == [
        "You are a single paragraph\nover two lines."
    ]
    assert parse_candidates("First paragraph.\n\nSecond paragraph.") == []  # no brackets, not single
    assert parse_candidates("") == []
    assert parse_candidates("<prompt></prompt>") == [""]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("You are nice.", "too_short"),
        ("You " + "really " * 120 + "are.", "too_long"),
        ("Prompt 3: You are a liberal voter who cares.", "template_debris"),
        ("You are {profile} and answer as this person.", "template_debris"),
        ("Score: 0.5. You are a liberal voter who cares.", "template_debris"),
        ("You are a liberal <prompt> voter who cares.", "template_debris"),
        ("You are a LIBERAL voter,  who cares!", "duplicate"),
        ("You are a conservative voter who cares.", None),
    ],
)
def test_validate_candidate(text, reason):
    seen = {normalize_prompt("You are a liberal voter who cares.")}
    assert validate_candidate(text, seen, min_words=5, max_words=120) == reason


def test_validate_word_limits_are_inclusive():
    five = "You are a liberal voter"
    assert validate_candidate(five, set(), min_words=5, max_words=5) is None
    assert validate_candidate(five + " x", set(), min_words=5, max_words=5) == "too_long"
