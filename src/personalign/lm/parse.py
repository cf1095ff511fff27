"""Generate-and-parse scoring: read a multiple-choice answer out of generated text.

Used by backends that cannot give log-probabilities (fermi spec §2): decode greedily up to
:data:`FALLBACK_MAX_TOKENS` tokens, then

1. take the first *standalone* valid letter (``"B"``, ``"(B)"``, ``"B."``, ``"Answer: B"``; not the
   ``B`` inside a word);
2. failing that, match an option's text case-insensitively, longest option first;
3. failing that, no answer (``pred is None``).

The result is one-hot in log space (``0`` for the parsed option, ``-inf`` elsewhere) with
``letter_mass`` 1, or all ``-inf`` with ``letter_mass`` 0 when nothing parsed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from personalign.lm.base import LETTERS, ChoiceRequest, ChoiceResult

FALLBACK_MAX_TOKENS = 8
_OPTION_LINE = re.compile(r"^([A-Z])\.\s+(.*\S)\s*$")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9])([A-Z])(?![A-Za-z0-9])")


def option_texts(request: ChoiceRequest) -> list[str] | None:
    """The option texts of the ``A. …`` lines in the request's last user turn, if all are there."""
    found: dict[str, str] = {}
    for line in request.messages[-1].content.splitlines():
        m = _OPTION_LINE.match(line.strip())
        if m and m.group(1) in request.letters and m.group(1) not in found:
            found[m.group(1)] = m.group(2)
    if len(found) != request.n_options:
        return None
    return [found[letter] for letter in request.letters]


def parse_choice(text: str, n_options: int, options: Sequence[str] | None = None) -> int | None:
    """The option index ``text`` answers, or ``None`` (see the module docstring for the rules)."""
    valid = LETTERS[:n_options]
    for m in _STANDALONE.finditer(text):
        if m.group(1) in valid:
            return valid.index(m.group(1))
    if options:
        low = text.lower()
        for j in sorted(range(len(options)), key=lambda j: (-len(options[j]), j)):
            opt = options[j].strip().lower()
            if opt and opt in low:
                return j
    return None


def choice_result_from_text(text: str, request: ChoiceRequest, prompt_tokens: int = 0) -> ChoiceResult:
    """The ``method="generate"`` :class:`ChoiceResult` for generated ``text``."""
    pred = parse_choice(text, request.n_options, option_texts(request))
    logprobs = tuple(0.0 if j == pred else -math.inf for j in range(request.n_options))
    return ChoiceResult(
        logprobs=logprobs,
        letter_mass=1.0 if pred is not None else 0.0,
        method="generate",
        prompt_tokens=prompt_tokens,
        raw_text=text,
    )
