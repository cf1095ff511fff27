"""Rendering multiple-choice questions (with an optional persona) into chat messages.

The rendering is fixed so that the same question asked by two methods is byte-identical, and so
hits the same cache entry. The persona is the system turn and comes first, forming a shared prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

from personalign.lm.base import LETTERS, ChoiceRequest, Message

ANSWER_INSTRUCTION = "Answer with the letter of one option only."
ANSWER_CUE = "Answer:"


def format_question(question: str, options: Sequence[str]) -> str:
    """``Question: …`` / ``Options:`` / ``A. …`` lines, the answer instruction, then ``Answer:``.

    The closing ``Answer:`` cue puts most of a small model's next-token mass on the letters: on 20
    real OpinionQA questions SmolLM2-135M-Instruct's mean letter mass rose from 0.59 (spec wording,
    "Reply with the letter of one option only.") to 0.86; Qwen2.5-Coder-0.5B stayed at 0.99.
    """
    if not options:
        raise ValueError("a multiple-choice question needs at least one option")
    if len(options) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} options are supported, got {len(options)}")
    lines = [f"Question: {question.strip()}", "Options:"]
    lines += [f"{LETTERS[j]}. {str(opt).strip()}" for j, opt in enumerate(options)]
    lines += [ANSWER_INSTRUCTION, ANSWER_CUE]
    return "\n".join(lines)


def render_choice(question: str, options: Sequence[str], system: str | None = None) -> ChoiceRequest:
    """Build the :class:`ChoiceRequest` for a question, with ``system`` as the persona (if any)."""
    messages: list[Message] = []
    if system is not None and system.strip():
        messages.append(Message("system", system.strip()))
    messages.append(Message("user", format_question(question, options)))
    return ChoiceRequest(messages=tuple(messages), n_options=len(options))
