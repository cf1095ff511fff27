"""The optimizer's meta-prompt, built under a token budget (spec §3).

Sections: the task, the person's profile, the previous prompts lowest score first (each with its
score and, for Fermi, the answers it got wrong), and the instruction. Failure lines are dealt
round-robin, best entry first, at most ``m_max`` per entry, while the "previous prompts" section
stays within ``meta_budget`` tokens (counted with the answering model's tokenizer); prompt texts
always appear in full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from personalign.fermi.config import FermiConfig
from personalign.fermi.memory import ScoredPrompt, ascending, sort_key
from personalign.fermi.prompts import display_text

TASK = (
    "Task: we are writing a short instruction (a system prompt) for an assistant that answers "
    "multiple-choice survey questions on behalf of one person. The instruction is scored by the "
    "fraction of the person's {n} known answers that the assistant reproduces; higher is better."
)
PROFILE_HEAD = "About the person:"
PREVIOUS_HEAD = "Previous prompts, lowest score first:"
INSTRUCTION = (
    "Write {n} new {noun}, different from all those above, that should score higher. Each must be "
    "self-contained, restating the facts about the person that matter (their profile and their "
    'views on the topics above). Write in the second person ("You ..."), at most {w} words '
    "each, and wrap each prompt in <prompt>...</prompt>."
)


@dataclass(frozen=True)
class MetaPrompt:
    """The rendered meta-prompt and what its budgeting did.

    Attributes:
        text: the full meta-prompt.
        shown_failures: failure lines shown per memory entry (by birth).
        hidden_failures: failure lines left out per memory entry (by birth).
        section_tokens: tokens of the "previous prompts" section.
    """

    text: str
    shown_failures: dict[int, int]
    hidden_failures: dict[int, int]
    section_tokens: int


def _cut(question: str, limit: int) -> str:
    q = " ".join(question.split())
    return q if len(q) <= limit else q[:limit].rstrip() + "…"


def failure_line(question: str, user_answer: str, model_answer: str, limit: int) -> str:
    """``- Q: … | person chose: … | assistant chose: …`` (question cut at ``limit`` characters)."""
    return f"- Q: {_cut(question, limit)} | person chose: {user_answer} | assistant chose: {model_answer}"


def _block(k: int, sp: ScoredPrompt, n: int, failures: Sequence[str], hidden: int, show: bool) -> str:
    lines = [f"Prompt {k}: {display_text(sp.spec)}", f"Score: {sp.acc:.2f} ({sp.n_correct}/{n})"]
    if show:
        if not sp.misaligned:
            lines.append("Answers it got wrong: none")
        else:
            lines.append("Answers it got wrong:")
            lines.extend(failures)
            if hidden:
                lines.append(f"(+{hidden} more not shown)")
    return "\n".join(lines)


def build_meta_prompt(
    profile_text: str,
    memory: Sequence[ScoredPrompt],
    n_train: int,
    n_requested: int,
    config: FermiConfig,
    count_tokens: Callable[[str], int],
) -> MetaPrompt:
    """Render the meta-prompt for ``memory`` (any order; shown ascending).

    ``config.show_failures = False`` gives the OPRO meta-prompt (prompts and scores only).
    """
    show = config.show_failures
    entries = ascending(memory, config.use_soft)
    best_first = sorted(memory, key=lambda sp: sort_key(sp, config.use_soft), reverse=True)
    lines_of = {
        sp.birth: [
            failure_line(m.question, m.user_answer, m.model_answer, config.question_max_chars)
            for m in sp.misaligned
        ]
        for sp in memory
    }
    chosen: dict[int, list[str]] = {sp.birth: [] for sp in memory}

    def section() -> str:
        blocks = [
            _block(
                k + 1,
                sp,
                n_train,
                chosen[sp.birth],
                len(lines_of[sp.birth]) - len(chosen[sp.birth]),
                show,
            )
            for k, sp in enumerate(entries)
        ]
        return PREVIOUS_HEAD + "\n\n" + "\n\n".join(blocks)

    tokens = count_tokens(section())
    if show:
        # Deal failure lines round-robin, best entry first, until the budget is reached.
        full = False
        for depth in range(config.m_max):
            for sp in best_first:
                if full:
                    break
                if depth >= len(lines_of[sp.birth]):
                    continue
                chosen[sp.birth].append(lines_of[sp.birth][depth])
                new_tokens = count_tokens(section())
                if new_tokens > config.meta_budget:
                    chosen[sp.birth].pop()
                    full = True
                else:
                    tokens = new_tokens
            if full:
                break
    prev = section()
    noun = "prompt" if n_requested == 1 else "prompts"
    text = "\n\n".join(
        [
            TASK.format(n=n_train),
            PROFILE_HEAD + "\n" + (profile_text or "(no profile given)"),
            prev,
            INSTRUCTION.format(n=n_requested, noun=noun, w=config.max_words),
        ]
    )
    return MetaPrompt(
        text=text,
        shown_failures={b: len(v) for b, v in chosen.items()},
        hidden_failures={b: len(lines_of[b]) - len(v) for b, v in chosen.items()},
        section_tokens=tokens,
    )
