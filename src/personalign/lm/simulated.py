"""Deterministic simulated language models for tests and algorithm demos (backend ``"simulated"``).

Two models, in the spirit of DSPy's ``DummyLM``: they read nothing but their input, so every
result is a pure function of the request (and its seed), and their behaviour is documented here so
tests can reason about it.

:class:`SimulatedLM` — a *simulated survey respondent* whose answers depend on the system prompt.

* **Option axis.** The options of a question are read as an ordinal axis from "liberal" (first
  option) to "conservative" (last option): option ``j`` of ``n`` sits at ``x_j = 2j/(n-1) - 1``.
* **Prior.** Without any cue, option ``j`` gets the logit ``prior_scale * h(question, option_j)``
  where ``h`` is a sha256-derived number in ``[-1, 1]``: the model's own idiosyncratic view.
* **Cues.** The system prompt is split into clauses (lines; a line holding an arrow ``→`` or ``->``
  is one clause, other lines are split after ``.``, ``;`` and ``!``). A clause yields a cue with a
  *target* position ``t`` and *topic words* (its content words: lower-case words of ≥ 4 letters,
  minus stop-words, stance words and modifiers):

  - an **answer cue** when the clause states an answer that is one of *this* question's options,
    either after an arrow (``Question text → Option``) or in double quotes (``you answer "Agree"``):
    ``t = x_j`` of that option. Topic words come from the rest of the clause.
  - a **stance cue** when the clause holds a stance word (``liberal``/``democrat``/``progressive``
    … = -1, ``conservative``/``republican``/``traditional`` … = +1, ``moderate``/``centrist`` … = 0)
    scaled by the nearest preceding modifier in the clause (``slightly``/``somewhat``/
    ``moderately``/``mildly``/``fairly`` = 0.5, ``very``/``strongly``/``firmly``/``extremely`` = 1.0,
    none = 1.0); several stance words in one clause are averaged.
* **Which cues apply.** The *overlap* of a cue is the number of its topic words found among the
  question's content words. If some cue overlaps, the cues with the largest overlap apply (their
  targets averaged): a topical statement overrides a general one. Otherwise the stance cues (never
  answer cues) apply, averaged. No applicable cue: prior only.
* **Stance term.** With a target ``t``, option ``j`` gains ``-stance_strength * (x_j - t)^2``.
* **Echo.** If an answer cue's clause contains this very question's text (case- and
  whitespace-insensitive), the stated option gains ``echo_strength`` more: the model repeats an
  answer it is shown for the same question.
* **Output.** Log-probabilities are the log-softmax of the logits plus ``log(letter_mass)``
  (``letter_mass = 0.95``: the rest of the vocabulary holds 5%).

So a prompt stating the person's stance, with the right intensity, and their answers on the topics
where they deviate from it, measurably raises accuracy on simulated users
(:func:`simulated_users`), and an optimizer that is shown the mis-aligned answers can find it.

``generate`` on a chat ending with a rendered multiple-choice question answers with an option
letter (greedy: the argmax; sampled: drawn from the option probabilities with the seed); on any
other chat it writes seeded pseudo-text from a fixed vocabulary. Both honour ``prefill``, ``stop``
and ``max_tokens``. ``count_tokens`` counts words and punctuation marks.

:class:`ScriptedOptimizerLM` — a simulated prompt optimizer. On a chat that looks like a Fermi/OPRO
meta-prompt (it holds ``Prompt k:`` blocks with ``Score:`` lines) it writes new prompts by
reacting only to what the meta-prompt shows:

* it starts from the best-scoring prompt shown (the last of the highest score);
* if failure lines (``- Q: … | person chose: … | assistant chose: …``) are shown, each requested
  prompt takes one of them (those of the best prompt first, starting at a seeded offset) and adds
  ``On {topic words of the question}, you answer "{person chose}".`` to the best prompt (replacing a
  statement on the same topic words; dropping the oldest statements to stay under the word limit);
* with no failure lines it can only perturb the best prompt: set an intensity modifier before its
  stance word, add a stance sentence built from the profile with a random modifier, or add a
  neutral sentence — all chosen with the seeded generator;
* with ``junk_rate > 0`` a seeded fraction of outputs are malformed (too short, template debris),
  to exercise the parser.

It writes ``<prompt>…</prompt>`` for each requested prompt (the number after "write"); with a
``prefill`` it continues it (a prompt then starts with ``You are``). All other behaviour is
:class:`SimulatedLM`'s.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from personalign.data.types import LabeledQuestion, Profile, Question, UserSplit
from personalign.lm.base import (
    LETTERS,
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
)
from personalign.lm.usage import Usage

__all__ = [
    "SIMULATED_LIKERT",
    "ScriptedOptimizerLM",
    "SimulatedLM",
    "content_words",
    "simulated_users",
]

STANCE_WORDS: dict[str, float] = {
    "liberal": -1.0,
    "liberals": -1.0,
    "democrat": -1.0,
    "democrats": -1.0,
    "democratic": -1.0,
    "progressive": -1.0,
    "left": -1.0,
    "conservative": 1.0,
    "conservatives": 1.0,
    "republican": 1.0,
    "republicans": 1.0,
    "traditional": 1.0,
    "right": 1.0,
    "moderate": 0.0,
    "centrist": 0.0,
    "independent": 0.0,
}
MODIFIERS: dict[str, float] = {
    "slightly": 0.5,
    "somewhat": 0.5,
    "moderately": 0.5,
    "mildly": 0.5,
    "fairly": 0.5,
    "very": 1.0,
    "strongly": 1.0,
    "firmly": 1.0,
    "extremely": 1.0,
}
_STOP = frozenset(
    """
    about above after again against also answer answered answering answers assistant because
    been before being below between both chose choose could described does doing down during
    each every from further have having here into itself just like more most much none only
    other over person people question questions really same should some such survey than that
    their them then there these they this those through under until very were what when where
    which while will with would your yours yourself always never think typical respondent honest
    honestly carefully values given describe describes please reply letter option options
    following answers before thoughtfully consider considering statement statements overall lean
    leans leaning tend
    """.split()  # noqa: SIM905
)
_WORD = re.compile(r"[a-z]+")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_QUOTED = re.compile(r"[\"“]([^\"“”]{1,120})[\"”]")
_ARROW = re.compile(r"\s*(?:→|->)\s*")
_CLAUSE_SPLIT = re.compile(r"(?<=[.;!])\s+")
_OPTION_LINE = re.compile(r"^([A-Z])\. (.*)$")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word


def content_words(text: str) -> tuple[str, ...]:
    """Topic words of ``text`` as :class:`SimulatedLM` reads them, in order, without repeats.

    Lower-case alphabetic words of at least 4 letters, minus stop-words, stance words and
    modifiers, with a crude plural strip.
    """
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if len(w) < 4 or w in _STOP or w in STANCE_WORDS or w in MODIFIERS:
            continue
        s = _stem(w)
        if s not in out:
            out.append(s)
    return tuple(out)


def _unit(*parts: object) -> float:
    """A number in [-1, 1] from the sha256 of ``parts``."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 * 2.0 - 1.0


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _seeded_rng(seed: int, *parts: object) -> random.Random:
    h = hashlib.sha256("\x1f".join([str(seed), *map(str, parts)]).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


@dataclass(frozen=True)
class _Clause:
    text: str
    norm: str
    topic: frozenset[str]
    quoted: tuple[str, ...]  # normalised answer texts stated in the clause
    stance: float | None


@lru_cache(maxsize=4096)
def _parse_system(system: str) -> tuple[_Clause, ...]:
    clauses: list[_Clause] = []
    for line in system.splitlines():
        line = line.strip().lstrip("-•* ").strip()
        if not line:
            continue
        pieces = [line] if _ARROW.search(line) else _CLAUSE_SPLIT.split(line)
        for piece in pieces:
            piece = piece.strip()
            if not piece:
                continue
            stated: list[str] = []
            rest = piece
            arrow = list(_ARROW.finditer(piece))
            if arrow:
                last = arrow[-1]
                stated.append(piece[last.end() :].strip().strip('"“”.').strip())
                rest = piece[: last.start()]
            for m in _QUOTED.finditer(rest):
                stated.append(m.group(1).strip())
            rest = _QUOTED.sub(" ", rest)
            stance_vals: list[float] = []
            modifier = 1.0
            for w in _WORD.findall(rest.lower()):
                if w in MODIFIERS:
                    modifier = MODIFIERS[w]
                elif w in STANCE_WORDS:
                    stance_vals.append(STANCE_WORDS[w] * modifier)
                    modifier = 1.0
            clauses.append(
                _Clause(
                    text=piece,
                    norm=_norm(piece),
                    topic=frozenset(content_words(rest)),
                    quoted=tuple(_norm(s) for s in stated if s),
                    stance=sum(stance_vals) / len(stance_vals) if stance_vals else None,
                )
            )
    return tuple(clauses)


def _parse_question(text: str) -> tuple[str, tuple[str, ...]] | None:
    """(question, options) of a message rendered by :func:`personalign.lm.chat.format_question`."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("Question: "):
        return None
    q_lines = [lines[0][len("Question: ") :]]
    i = 1
    while i < len(lines) and lines[i] != "Options:":
        q_lines.append(lines[i])
        i += 1
    options: list[str] = []
    for line in lines[i + 1 :]:
        m = _OPTION_LINE.match(line)
        if m and m.group(1) == LETTERS[len(options)]:
            options.append(m.group(2))
    return "\n".join(q_lines), tuple(options)


class SimulatedLM:
    """Deterministic simulated survey respondent steered by its system prompt (see module doc).

    Args:
        prior_scale: weight of the model's own hashed opinion per option.
        stance_strength: weight of the squared distance to the target position.
        echo_strength: bonus for an answer stated for this very question.
        letter_mass: total probability on the option letters.
        name: model name (part of :attr:`model_id`).
    """

    backend = "simulated"

    def __init__(
        self,
        prior_scale: float = 0.4,
        stance_strength: float = 4.0,
        echo_strength: float = 6.0,
        letter_mass: float = 0.95,
        name: str = "simulated-respondent",
    ) -> None:
        if not 0 < letter_mass <= 1:
            raise ValueError(f"letter_mass must be in (0, 1], got {letter_mass}")
        self.prior_scale = prior_scale
        self.stance_strength = stance_strength
        self.echo_strength = echo_strength
        self.letter_mass = letter_mass
        self.name = name
        self.usage = Usage()

    @property
    def model_id(self) -> str:
        params = f"{self.prior_scale},{self.stance_strength},{self.echo_strength},{self.letter_mass}"
        return f"{self.name}@v1:{hashlib.sha256(params.encode()).hexdigest()[:8]}"

    def count_tokens(self, text: str) -> int:
        """Words and punctuation marks."""
        return len(_TOKEN.findall(text))

    # -- scoring -------------------------------------------------------------------------------

    def option_logits(self, system: str, question: str, options: Sequence[str]) -> list[float]:
        """The documented logits of each option for ``question`` under the persona ``system``."""
        n = len(options)
        xs = [0.0] * n if n == 1 else [2.0 * j / (n - 1) - 1.0 for j in range(n)]
        logits = [self.prior_scale * _unit("prior", _norm(question), _norm(o)) for o in options]
        clauses = _parse_system(system) if system else ()
        if not clauses:
            return logits
        opt_norm = [_norm(o) for o in options]
        q_words = set(content_words(question))
        q_norm = _norm(question)
        cues: list[tuple[int, float, bool]] = []  # (overlap, target, is_answer)
        echo: set[int] = set()
        for c in clauses:
            overlap = len(c.topic & q_words)
            answer = next((opt_norm.index(s) for s in c.quoted if s in opt_norm), None)
            if answer is not None:
                cues.append((overlap, xs[answer], True))
                if q_norm and q_norm in c.norm:
                    echo.add(answer)
            elif c.stance is not None:
                cues.append((overlap, c.stance, False))
        best = max((o for o, _, _ in cues), default=0)
        if best > 0:
            targets = [t for o, t, _ in cues if o == best]
        else:
            targets = [t for _, t, is_answer in cues if not is_answer]
        if targets:
            t = sum(targets) / len(targets)
            logits = [lg - self.stance_strength * (x - t) ** 2 for lg, x in zip(logits, xs, strict=True)]
        for j in echo:
            logits[j] += self.echo_strength
        return logits

    def _score_one(self, req: ChoiceRequest) -> ChoiceResult:
        system = "\n".join(m.content for m in req.messages if m.role == "system")
        parsed = _parse_question(req.messages[-1].content)
        if parsed is None or len(parsed[1]) != req.n_options:
            # Not one of our renderings: score the letters from the prior of the whole text.
            question = req.messages[-1].content
            options: tuple[str, ...] = tuple(LETTERS[: req.n_options])
        else:
            question, options = parsed
        logits = self.option_logits(system, question, options)
        m = max(logits)
        log_z = m + math.log(sum(math.exp(lg - m) for lg in logits))
        lm = math.log(self.letter_mass)
        prompt_tokens = sum(self.count_tokens(msg.content) for msg in req.messages)
        return ChoiceResult(
            logprobs=tuple(lg - log_z + lm for lg in logits),
            letter_mass=self.letter_mass,
            method="logprobs",
            prompt_tokens=prompt_tokens,
        )

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        start = time.perf_counter()
        out = [self._score_one(r) for r in requests]
        self.usage.calls += len(out)
        self.usage.prompt_tokens += sum(r.prompt_tokens for r in out)
        self.usage.seconds += time.perf_counter() - start
        return out

    # -- generation ----------------------------------------------------------------------------

    def _complete(self, req: GenerationRequest) -> str:
        """The full assistant reply (including the prefill) before stop strings and max_tokens."""
        last = req.messages[-1].content if req.messages else ""
        parsed = _parse_question(last)
        if parsed is not None and parsed[1]:
            system = "\n".join(m.content for m in req.messages if m.role == "system")
            logits = self.option_logits(system, parsed[0], parsed[1])
            if req.temperature == 0:
                j = max(range(len(logits)), key=lambda k: (logits[k], -k))
            else:
                rng = _seeded_rng(req.seed, "answer", *(m.content for m in req.messages))
                weights = [math.exp(lg / req.temperature - max(logits) / req.temperature) for lg in logits]
                j = rng.choices(range(len(logits)), weights=weights)[0]
            return req.prefill + LETTERS[j]
        seed = 0 if req.temperature == 0 else req.seed
        rng = _seeded_rng(seed, "text", *(m.content for m in req.messages), req.prefill)
        vocab = _FILLER
        words = [rng.choice(vocab) for _ in range(req.max_tokens + 4)]
        return req.prefill + " " + " ".join(words) + "."

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        start = time.perf_counter()
        out: list[GenerationResult] = []
        for req in requests:
            full = self._complete(req)
            text = full[len(req.prefill) :] if full.startswith(req.prefill) else full
            finish = "stop"
            cut = min((i for i in (text.find(s) for s in req.stop if s) if i >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
            tokens = list(re.finditer(r"\s*(?:\w+|[^\w\s])", text))
            if len(tokens) > req.max_tokens:
                text = text[: tokens[req.max_tokens - 1].end()]
                finish = "length"
            prompt_tokens = sum(self.count_tokens(m.content) for m in req.messages)
            prompt_tokens += self.count_tokens(req.prefill)
            out.append(
                GenerationResult(
                    text=text,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=self.count_tokens(text),
                    finish_reason=finish,  # type: ignore[arg-type]
                )
            )
        self.usage.calls += len(out)
        self.usage.prompt_tokens += sum(r.prompt_tokens for r in out)
        self.usage.generated_tokens += sum(r.completion_tokens for r in out)
        self.usage.seconds += time.perf_counter() - start
        return out


_FILLER = tuple(
    """
    the people answer survey opinion view often think more less about issue country community
    family work policy change support would could many some
    """.split()  # noqa: SIM905
)

_BLOCK = re.compile(r"^Prompt (\d+): ?(.*)$")
_SCORE = re.compile(r"^Score: ([0-9.]+)")
_FAIL = re.compile(r"^- Q: (.*) \| person chose: (.*) \| assistant chose: (.*)$")
_WRITE_N = re.compile(r"[Ww]rite (\d+) new prompt")
_ON_TOPIC = re.compile(r"\s*On ([a-z ]+), you answer \"[^\"]*\"\.")
_PROFILE_HEAD = "About the person:"
_NEUTRAL = (
    "Answer the way this person really would.",
    "Think about this person's values before answering.",
    "Stay consistent with this person's views.",
    "Answer each question as this person.",
)


@dataclass
class _Block:
    text: str
    score: float
    failures: list[tuple[str, str, str]]


def _parse_meta(text: str) -> tuple[str, list[_Block]] | None:
    lines = text.splitlines()
    blocks: list[_Block] = []
    profile = ""
    cur: _Block | None = None
    in_prompt = False
    for i, line in enumerate(lines):
        if line.strip() == _PROFILE_HEAD and i + 1 < len(lines):
            profile = lines[i + 1].strip()
        m = _BLOCK.match(line)
        if m:
            cur = _Block(m.group(2), 0.0, [])
            blocks.append(cur)
            in_prompt = True
            continue
        if cur is None:
            continue
        s = _SCORE.match(line)
        if s:
            cur.score = float(s.group(1))
            in_prompt = False
            continue
        if in_prompt:
            if not line.startswith("(+"):  # a note about automatic slots, not prompt text
                cur.text += "\n" + line
            continue
        f = _FAIL.match(line.strip())
        if f:
            cur.failures.append((f.group(1), f.group(2), f.group(3)))
    if not blocks:
        return None
    return profile, blocks


def _words(text: str) -> int:
    return len(text.split())


class ScriptedOptimizerLM(SimulatedLM):
    """Deterministic simulated prompt optimizer that reacts to the meta-prompt (see module doc).

    Args:
        junk_rate: fraction of outputs (seeded) that are deliberately malformed.
        max_words: word limit it keeps its prompts under.
        topic_words: how many content words of a failed question name its topic.
        **kwargs: passed to :class:`SimulatedLM`.
    """

    def __init__(
        self, junk_rate: float = 0.0, max_words: int = 120, topic_words: int = 2, **kwargs: object
    ) -> None:
        kwargs.setdefault("name", "scripted-optimizer")
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.junk_rate = junk_rate
        self.max_words = max_words
        self.topic_words = topic_words

    def _complete(self, req: GenerationRequest) -> str:
        text = "\n".join(m.content for m in req.messages if m.role == "user")
        parsed = _parse_meta(text)
        if parsed is None:
            return super()._complete(req)
        profile, blocks = parsed
        m = _WRITE_N.search(text)
        n = 1 if req.prefill else max(1, int(m.group(1)) if m else 1)
        rng = _seeded_rng(req.seed if req.temperature > 0 else 0, "optimize", text, req.prefill)
        best = max(reversed(blocks), key=lambda b: b.score)  # last of the highest score
        failures = list(best.failures) + [f for b in blocks if b is not best for f in b.failures]
        offset = rng.randrange(len(failures)) if failures else 0
        outs = []
        for k in range(n):
            if self.junk_rate > 0 and rng.random() < self.junk_rate:
                cand = rng.choice(["You are.", "Score: 0.50 {profile}", ""])
            elif failures:
                cand = self._fix(best.text, failures[(offset + k) % len(failures)])
            else:
                cand = self._perturb(best.text, profile, rng)
            if req.prefill.rstrip().endswith("You are") and not cand.startswith("You are"):
                cand = "You are a survey respondent. " + cand
            outs.append(f"<prompt>{cand}</prompt>")
        full = "\n".join(outs)
        if req.prefill and full.startswith(req.prefill):
            return full
        return req.prefill + full

    def _fix(self, base: str, failure: tuple[str, str, str]) -> str:
        question, chose, _ = failure
        topic = " ".join(content_words(question)[: self.topic_words]) or "this topic"
        core = _ON_TOPIC.sub("", base).strip()
        stmt = [f'On {s}, you answer "{a}".' for s, a in self._statements(base) if s != topic]
        stmt.append(f'On {topic}, you answer "{chose}".')
        while stmt and _words(core + " " + " ".join(stmt)) > self.max_words:
            stmt.pop(0)
        return (core + " " + " ".join(stmt)).strip()

    @staticmethod
    def _statements(text: str) -> list[tuple[str, str]]:
        return re.findall(r"On ([a-z ]+), you answer \"([^\"]*)\"\.", text)

    def _perturb(self, base: str, profile: str, rng: random.Random) -> str:
        op = rng.randrange(3)
        mod = rng.choice(sorted(MODIFIERS))
        words = base.split(" ")
        stance_at = [i for i, w in enumerate(words) if w.lower().strip('.,;:!"') in STANCE_WORDS]
        if op == 0 and stance_at:
            i = stance_at[0]
            if i > 0 and words[i - 1].lower() in MODIFIERS:
                words[i - 1] = mod
            else:
                words.insert(i, mod)
            cand = " ".join(words)
        elif op <= 1:
            stance = next(
                (w for w in _WORD.findall(profile.lower()) if w in STANCE_WORDS),
                next((w for w in _WORD.findall(base.lower()) if w in STANCE_WORDS), None),
            )
            cand = base + (f" Overall you are {mod} {stance}." if stance else " " + rng.choice(_NEUTRAL))
        else:
            cand = base + " " + rng.choice(_NEUTRAL)
        while _words(cand) > self.max_words and "." in cand:
            cand = cand[: cand.rfind(".", 0, len(cand) - 1) + 1]
        return cand


# -- simulated users ----------------------------------------------------------------------------

SIMULATED_LIKERT = (
    "Strongly disagree",
    "Somewhat disagree",
    "Neither agree nor disagree",
    "Somewhat agree",
    "Strongly agree",
)
_TOPICS = (
    "climate rules",
    "firearm ownership",
    "border enforcement",
    "wage floors",
    "school vouchers",
    "military budgets",
)
_TEMPLATES = (
    "{T} should be expanded nationwide.",
    "{T} deserve more public funding.",
    "{T} would benefit ordinary citizens.",
    "{T} must be a priority this decade.",
    "{T} need stronger federal support.",
    "{T} help local communities.",
    "{T} should grow over time.",
    "{T} matter for future generations.",
)


def simulated_users(
    n_users: int,
    n_train: int = 15,
    n_test: int = 24,
    seed: int = 0,
    deviating_topics: int = 2,
    noise: float = 0.1,
    prefix: str = "sim",
) -> list[UserSplit]:
    """Simulated respondents consistent with :class:`SimulatedLM`'s reading of prompts.

    Every question is a 5-point agree/disagree statement that starts with one of six two-word
    topics, followed by one of eight templates. Each user has an
    ideology direction ``d = ±1`` and strength ``s ∈ {0.5, 1.0}``; their target on a topic is
    ``d·s``, except on ``deviating_topics`` topics where it is redrawn from the other positions.
    The answer is the option nearest the target, moved one step with probability ``noise``. The
    profile gives only the party (``Republican`` / ``Democrat``) and an age band, so the profile
    alone states the direction but not the strength nor the deviations.
    """
    users: list[UserSplit] = []
    positions = [-1.0, -0.5, 0.0, 0.5, 1.0]
    questions = [
        Question(id=f"{prefix}-q{t}-{k}", text=tmpl.format(T=topic.capitalize()), options=SIMULATED_LIKERT)
        for t, topic in enumerate(_TOPICS)
        for k, tmpl in enumerate(_TEMPLATES)
    ]
    for u in range(n_users):
        rng = _seeded_rng(seed, "simulated-user", prefix, u)
        d = rng.choice([-1.0, 1.0])
        s = rng.choice([0.5, 1.0])
        targets = {topic: d * s for topic in _TOPICS}
        for topic in rng.sample(_TOPICS, deviating_topics):
            targets[topic] = rng.choice([p for p in positions if p != d * s])
        items = []
        for q in questions:
            topic = next(t for t in _TOPICS if t in q.text.lower())
            j = min(range(5), key=lambda k: abs(positions[k] - targets[topic]))
            if rng.random() < noise:
                j = min(4, max(0, j + rng.choice([-1, 1])))
            items.append(LabeledQuestion(q, j))
        rng.shuffle(items)
        profile = Profile(
            attributes={"Party": "Republican" if d > 0 else "Democrat", "Age": rng.choice(["18-29", "50-64"])}
        )
        users.append(
            UserSplit(
                user_id=f"{prefix}-{u}",
                profile=profile,
                train=tuple(items[:n_train]),
                test=tuple(items[n_train : n_train + n_test]),
                dataset="simulated",
            )
        )
    return users
