"""Meta-prompt snapshot and budget; Retrieval-of-Prompt neighbours and tie-breaks; leave-one-out."""

from __future__ import annotations

from personalign.data.types import LabeledQuestion, Question
from personalign.fermi.config import FermiConfig
from personalign.fermi.memory import MisalignedRecord
from personalign.fermi.meta_prompt import build_meta_prompt
from personalign.fermi.prompts import OPINIONS_HEADER, PromptSpec, render_system
from personalign.fermi.rop import nearest, select_prompt
from personalign.fermi.scoring import score_prompt, training_requests
from personalign.lm.chat import render_choice
from personalign.lm.simulated import SimulatedLM

from .helpers import scored


def words(text: str) -> int:
    return len(text.split())


def mis(i: int, q: str = "Question", user: str = "Yes", model: str = "No") -> MisalignedRecord:
    return MisalignedRecord(i, f"{q} {i}?", user, model)


SNAPSHOT = """\
Task: we are writing a short instruction (a system prompt) for an assistant that answers \
multiple-choice survey questions on behalf of one person. The instruction is scored by the \
fraction of the person's 4 known answers that the assistant reproduces; higher is better.

About the person:
Party: Democrat

Previous prompts, lowest score first:

Prompt 1: Answer each survey question the way a typical respondent would.
Score: 0.25 (1/4)
Answers it got wrong:
- Q: Question 0? | person chose: Yes | assistant chose: No
- Q: Question 1? | person chose: Yes | assistant chose: (no valid answer)
(+1 more not shown)

Prompt 2: You are a Democrat.
Score: 0.75 (3/4)
Answers it got wrong:
- Q: Question 2? | person chose: Yes | assistant chose: No

Write 4 new prompts, different from all those above, that should score higher. Each must be \
self-contained, restating the facts about the person that matter (their profile and their views \
on the topics above). Write in the second person ("You ..."), at most 120 words each, and wrap \
each prompt in <prompt>...</prompt>."""


def snapshot_memory():
    low = scored(
        "Answer each survey question the way a typical respondent would.",
        0.25,
        birth=1,
        correct=(False, False, False, True),
        misaligned=(mis(0), mis(1, model="(no valid answer)"), mis(2)),
    )
    high = scored(
        "You are a Democrat.", 0.75, birth=0, correct=(True, True, False, True), misaligned=(mis(2),)
    )
    return [high, low]


def test_meta_prompt_snapshot():
    meta = build_meta_prompt("Party: Democrat", snapshot_memory(), 4, 4, FermiConfig(m_max=2), words)
    assert meta.text == SNAPSHOT
    assert meta.shown_failures == {0: 1, 1: 2} and meta.hidden_failures == {0: 0, 1: 1}


def test_opro_meta_prompt_has_no_failure_lines():
    meta = build_meta_prompt(
        "Party: Democrat", snapshot_memory(), 4, 1, FermiConfig(show_failures=False), words
    )
    assert "got wrong" not in meta.text and "person chose" not in meta.text
    assert "Score: 0.75 (3/4)" in meta.text and "Write 1 new prompt," in meta.text


def test_budget_deals_failure_lines_round_robin_best_first():
    best = scored("Best prompt.", 0.5, birth=0, misaligned=tuple(mis(i, "Best") for i in range(8)))
    worst = scored("Worst prompt.", 0.1, birth=1, misaligned=tuple(mis(i, "Worst") for i in range(8)))
    cfg = FermiConfig(meta_budget=10_000, m_max=5)
    full = build_meta_prompt("p", [best, worst], 10, 4, cfg, words)
    assert full.shown_failures == {0: 5, 1: 5}  # m_max per entry
    assert "(+3 more not shown)" in full.text
    base = build_meta_prompt("p", [best, worst], 10, 4, FermiConfig(meta_budget=1, m_max=5), words)
    assert base.shown_failures == {0: 0, 1: 0}  # prompts still shown in full
    assert "Prompt 1: Worst prompt." in base.text and "Prompt 2: Best prompt." in base.text
    line = words("- Q: Best 0? | person chose: Yes | assistant chose: No")
    # room for exactly three lines: best, worst, best (round-robin, best entry first)
    tight = build_meta_prompt(
        "p", [best, worst], 10, 4, FermiConfig(meta_budget=base.section_tokens + 3 * line), words
    )
    assert tight.shown_failures == {0: 2, 1: 1}
    assert tight.section_tokens <= base.section_tokens + 3 * line


def test_long_questions_are_cut():
    long_q = "word " * 200
    sp = scored("P.", 0.0, misaligned=(MisalignedRecord(0, long_q, "A", "B"),))
    meta = build_meta_prompt("p", [sp], 1, 1, FermiConfig(question_max_chars=50), words)
    line = next(x for x in meta.text.splitlines() if x.startswith("- Q:"))
    q = line[len("- Q: ") : line.index(" | person chose")]
    assert q.endswith("…") and len(q) <= 51


# -- Retrieval-of-Prompt ----------------------------------------------------------------------


def test_nearest_ties_go_to_lower_index_and_clamps():
    assert nearest([0.5, 0.9, 0.9, 0.1], 3) == [(1, 0.9), (2, 0.9), (0, 0.5)]
    assert nearest([0.5, 0.9], 10) == [(1, 0.9), (0, 0.5)]
    assert nearest([0.5, 0.9], 0) == [(1, 0.9)]
    assert nearest([0.5, 0.9, 0.7], 2, exclude=1) == [(2, 0.7), (0, 0.5)]
    assert nearest([0.3000000001, 0.3], 1) == [(0, 0.3)]  # rounded to 1e-6, then lower index


def test_select_prompt_by_neighbour_accuracy_then_tie_breaks():
    C = [
        [1, 0, 0, 1],  # p0
        [0, 1, 1, 0],  # p1
        [0, 1, 1, 1],  # p2
    ]
    acc, soft, birth = [0.5, 0.5, 0.75], [-1.0, -0.5, -2.0], [0, 1, 2]
    choice = select_prompt(C, acc, soft, birth, [0])
    assert choice.index == 0 and choice.tie_break is None and choice.neighbour_acc == (1.0, 0.0, 0.0)
    # p1 and p2 tie on neighbours {1, 2}: overall acc decides
    choice = select_prompt(C, acc, soft, birth, [1, 2])
    assert (choice.index, choice.tie_break) == (2, "acc")
    # p0, p1 tie on neighbours and acc: soft decides; without soft, earlier birth
    C2 = [[1, 0], [1, 0]]
    assert select_prompt(C2, [0.5, 0.5], [-1.0, -0.5], [0, 1], [0]).tie_break == "soft"
    assert select_prompt(C2, [0.5, 0.5], [-1.0, -0.5], [0, 1], [0]).index == 1
    no_soft = select_prompt(C2, [0.5, 0.5], [-1.0, -0.5], [4, 3], [0], use_soft=False)
    assert (no_soft.index, no_soft.tie_break) == (1, "birth")


# -- leave-one-out rendering ------------------------------------------------------------------


def _train():
    opts = ("Yes", "No")
    return tuple(
        LabeledQuestion(Question(f"q{i}", f"Do you like topic{i} things?", opts), i % 2) for i in range(4)
    )


def test_render_system_leave_one_out():
    train = _train()
    spec = PromptSpec("You are you.", opinions=(0, 1, 2, 3))
    full = render_system(spec, train)
    assert full.startswith("You are you.\n" + OPINIONS_HEADER)
    assert all(f"topic{i} things? → {train[i].question.options[train[i].answer]}" in full for i in range(4))
    loo = render_system(spec, train, exclude=2)
    assert "topic2" not in loo and "topic1" in loo and "topic3" in loo
    retr = PromptSpec("You are you.", retrieval_k=2)
    assert render_system(retr, train, exclude=1, retrieved=[1, 3, 0]).count("→") == 2
    assert "topic1" not in render_system(retr, train, exclude=1, retrieved=[1, 3, 0])
    assert render_system(PromptSpec("Plain."), train) == "Plain."


def test_training_requests_never_show_the_scored_item():
    train = _train()
    spec = PromptSpec("You are you.", opinions=(0, 1, 2, 3))
    neighbours = [[j for j in range(4) if j != i] for i in range(4)]
    for s in (spec, PromptSpec("You are you.", retrieval_k=3)):
        for i, req in enumerate(training_requests(s, train, neighbours)):
            system = req.messages[0].content
            assert f"topic{i} things? →" not in system
            assert req.messages[-1].content.startswith(f"Question: Do you like topic{i} things?")


def test_leave_one_out_removes_the_echo_advantage():
    # The simulated LM echoes an answer stated for the very question: without leave-one-out the
    # "all opinions" prompt would look perfect on training data.
    train = _train()
    lm = SimulatedLM()
    spec = PromptSpec("You are you.", origin="ext:all", opinions=(0, 1, 2, 3))
    sp = score_prompt(lm, spec, train, birth=0, round=1)
    full = render_system(spec, train)
    leaky = [
        lm.score_choices([render_choice(it.question.text, it.question.options, full)])[0].pred == it.answer
        for it in train
    ]
    assert all(leaky)  # shown its own answer, the model repeats it
    assert sp.acc < 1.0  # scored leave-one-out it does not
