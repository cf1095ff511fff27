"""The simulated respondent and the scripted optimizer: LM contract and documented behaviour."""

from __future__ import annotations

import pytest

from personalign.lm.base import GenerationRequest, LanguageModel, Message
from personalign.lm.chat import render_choice
from personalign.lm.simulated import (
    SIMULATED_LIKERT,
    ScriptedOptimizerLM,
    SimulatedLM,
    content_words,
    simulated_users,
)

from .contract import check_choice_contract, check_generation_contract

Q = "Climate rules should be expanded nationwide."
Q_SAME_TOPIC = "Climate rules deserve more public funding."
Q_OTHER_TOPIC = "Firearm ownership deserve more public funding."


def pred(lm: SimulatedLM, system: str | None, question: str = Q, options=SIMULATED_LIKERT) -> int:
    return lm.score_choices([render_choice(question, options, system)])[0].pred


@pytest.mark.parametrize("cls", [SimulatedLM, ScriptedOptimizerLM])
def test_contract(cls):
    lm = cls()
    assert isinstance(lm, LanguageModel) and lm.backend == "simulated"
    check_choice_contract(lm)
    check_generation_contract(lm)


def test_deterministic_and_reads_only_its_input():
    a, b = SimulatedLM(), SimulatedLM()
    req = render_choice(Q, SIMULATED_LIKERT, "You are a Republican.")
    assert a.score_choices([req]) == b.score_choices([req])
    assert a.model_id == b.model_id
    assert SimulatedLM(stance_strength=2.0).model_id != a.model_id


def test_stance_words_move_the_answer_along_the_option_axis():
    lm = SimulatedLM()
    assert pred(lm, "You are a Republican.") == 4  # conservative: last option
    assert pred(lm, "You are a Democrat.") == 0  # liberal: first option
    assert pred(lm, "You are somewhat conservative.") == 3  # modifier 0.5
    assert pred(lm, "You are slightly liberal.") == 1
    assert pred(lm, "You are a political moderate.") == 2


def test_letter_mass_and_probabilities():
    res = SimulatedLM().score_choices([render_choice(Q, SIMULATED_LIKERT, "You are a Republican.")])[0]
    assert res.letter_mass == pytest.approx(0.95)
    assert sum(res.probs) == pytest.approx(1.0)
    assert res.probs[4] > 0.5


def test_topical_answer_overrides_general_stance_only_on_that_topic():
    lm = SimulatedLM()
    system = 'You are a Republican. On climate rules, you answer "Strongly disagree".'
    assert pred(lm, system, Q) == 0
    assert pred(lm, system, Q_SAME_TOPIC) == 0
    assert pred(lm, system, Q_OTHER_TOPIC) == 4  # the general stance still applies elsewhere


def test_stated_past_answers_generalise_and_echo():
    lm = SimulatedLM()
    stated = f"You previously answered:\n- {Q} → Somewhat disagree"
    assert pred(lm, stated, Q) == 1  # echo of the very question
    assert pred(lm, stated, Q_SAME_TOPIC) == 1  # same topic words: same position
    # an answer on another topic never acts as a general stance
    assert pred(lm, stated, Q_OTHER_TOPIC) == pred(lm, None, Q_OTHER_TOPIC)
    # the echo is stronger than a conflicting general stance
    assert pred(lm, "You are a Democrat.\n" + stated.replace("Somewhat disagree", "Strongly agree")) == 4


def test_content_words():
    assert content_words("Climate rules should be expanded nationwide.") == (
        "climate",
        "rule",
        "expanded",
        "nationwide",
    )
    assert content_words("You are very conservative about it") == ()


def test_generation_answers_choice_questions_and_honours_prefill():
    lm = SimulatedLM()
    req = render_choice(Q, SIMULATED_LIKERT, "You are a Republican.")
    out = lm.generate([GenerationRequest(messages=req.messages, max_tokens=4, temperature=0.0)])[0]
    assert out.text == "E"
    ask = GenerationRequest(messages=(Message("user", "Tell me."),), prefill="Sure,", seed=3)
    pre = lm.generate([ask])[0]
    assert not pre.text.startswith("Sure,") and pre.text.strip()


META = """Task: ...

About the person:
Party: Republican; Age: 18-29

Previous prompts, lowest score first:

Prompt 1: Answer each survey question the way a typical respondent would.
Score: 0.20 (3/15)
Answers it got wrong:
- Q: Climate rules help local communities. | person chose: Strongly disagree | assistant chose: Somewhat agree

Prompt 2: You are answering a survey as the person described here. Party: Republican. Answer as them.
Score: 0.40 (6/15)
Answers it got wrong:
- Q: School vouchers should grow over time. | person chose: Somewhat agree | assistant chose: Strongly agree

Write 2 new prompts, different from all those above, that should score higher."""


def _gen(lm, text, **kw):
    return lm.generate([GenerationRequest(messages=(Message("user", text),), max_tokens=300, **kw)])[0].text


def test_scripted_optimizer_states_the_failed_answers_of_the_best_prompt_first():
    lm = ScriptedOptimizerLM()
    out = _gen(lm, META, seed=1)
    assert out.count("<prompt>") == 2
    assert "Party: Republican" in out  # it builds on the best prompt shown
    assert 'On school voucher, you answer "Somewhat agree".' in out
    assert 'On climate rule, you answer "Strongly disagree".' in out
    assert _gen(lm, META, seed=1) == out  # deterministic given the seed


def test_scripted_optimizer_without_failures_can_only_perturb():
    lm = ScriptedOptimizerLM()
    meta = "\n".join(line for line in META.splitlines() if not line.startswith(("- Q:", "Answers it")))
    outs = {_gen(lm, meta, seed=s) for s in range(8)}
    assert all("you answer" not in o for o in outs)
    assert len(outs) > 1  # different seeds, different perturbations
    assert all("Party:" in o and "Republican" in o for o in outs)  # the best prompt, perturbed


def test_scripted_optimizer_prefill_and_junk():
    lm = ScriptedOptimizerLM()
    one = META.replace("Write 2", "Write 1")
    text = _gen(lm, one, seed=2, prefill="<prompt>You are", stop=("</prompt>",))
    assert text.startswith(" answering a survey") and "</prompt>" not in text
    junk = ScriptedOptimizerLM(junk_rate=1.0)
    assert "On " not in _gen(junk, META, seed=5)


def test_simulated_users_are_reproducible_and_isolated():
    a, b = simulated_users(3, seed=1), simulated_users(3, seed=1)
    assert a == b
    assert simulated_users(3, seed=2) != a
    u = a[0]
    assert len(u.train) == 15 and len(u.test) == 24
    assert not {it.question.id for it in u.train} & {it.question.id for it in u.test}
    assert u.profile.attributes["Party"] in ("Republican", "Democrat")
