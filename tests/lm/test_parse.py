"""The generate-and-parse fallback: letters first, then option text (longest first), else None."""

from __future__ import annotations

import math

import pytest

from personalign.lm.chat import render_choice
from personalign.lm.parse import choice_result_from_text, option_texts, parse_choice

OPTS = ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", 1),
        (" C.", 2),
        ("(D) because", 3),
        ("Answer: A", 0),
        ("**B**", 1),
        ("Bagels are great", None),  # a letter inside a word is not an answer
        ("E", None),  # not a valid letter for 4 options
        ("E or C", 2),  # the first *valid* standalone letter
        ("I would say strongly disagree", 3),  # longest option text wins over "disagree"
        ("agree", 1),
        ("no idea", None),
        ("", None),
    ],
)
def test_parse_choice(text: str, expected: int | None) -> None:
    assert parse_choice(text, 4, OPTS) == expected


def test_option_texts_and_result_shape() -> None:
    req = render_choice("Do you agree?", OPTS, "persona")
    assert option_texts(req) == OPTS
    r = choice_result_from_text("Disagree, mostly", req, prompt_tokens=11)
    assert r.method == "generate" and r.pred == 2 and r.letter_mass == 1.0 and r.prompt_tokens == 11
    assert r.logprobs == (-math.inf, -math.inf, 0.0, -math.inf) and r.raw_text == "Disagree, mostly"
    none = choice_result_from_text("hmm", req)
    assert none.pred is None and none.letter_mass == 0.0
