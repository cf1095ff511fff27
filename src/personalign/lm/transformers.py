"""Local language models through Hugging Face ``transformers``: HF folders and GGUF files, CPU or GPU.

>>> from personalign.lm.transformers import TransformersLM
>>> from personalign.lm.chat import render_choice
>>> lm = TransformersLM("smollm2-135m")                       # doctest: +SKIP
>>> lm.score_choices([render_choice("Pick one", ["yes", "no"])])[0].probs  # doctest: +SKIP

**GGUF files** are dequantized by ``transformers`` (with ``gguf``), which takes a while (15 s for
the 135M model, about a minute for bigger ones on 2 cores). The first load therefore saves the
dense model and its tokenizer as safetensors in ``cache_dir("models", "<name>-<sha256[:12]>")``
(written to a temporary folder, then renamed, so a crash never leaves half a model there); later
loads read that folder in seconds. :attr:`TransformersLM.loaded_from_` says which was used.

**dtype** ``"auto"`` is bfloat16 on a GPU that supports it (else float16), and on a CPU only if it
has native bf16 instructions (``avx512_bf16`` / ``amx_bf16`` on x86, ``bf16`` on ARM, read from
``/proc/cpuinfo``), float32 otherwise. ``torch.backends.cpu.get_cpu_capability()`` reports only the
vector width ("AVX512"), not bf16 support, so it is not enough on its own. Measured speeds are in
``docs/benchmarks.md`` (section "LM throughput").

**Choice scoring** renders each chat with the model's own chat template (``add_generation_prompt``;
a template that rejects a system turn gets the system text prepended to the first user turn),
sorts requests by length, right-pads each batch (attention mask; position ids count real tokens),
runs one forward pass computing only the logits at each row's last real position, and takes
``log_softmax`` over the whole vocabulary. Right padding keeps every real token at the same place
in the tensor as when the request runs alone, and with the default eager attention this makes the
scores of a request bit-identical whatever else is in the batch, in bf16 too (left padding, or SDPA,
shifts the bf16 reductions and moved log-probabilities by up to 0.1-0.4 on smollm2-135m; eager costs
no measurable speed at these prompt lengths on CPU). An option's log-probability is the log-sum-exp over
the single-token spellings of its letter (``"A"`` and ``" A"``); ``letter_mass`` is the total
probability on all option letters. The shared persona prefix is not reused across requests (no KV
sharing): every request is computed in full, which keeps batched and one-by-one results equal.

**Generation** runs its own decoding loop (temperature, top-p, stop strings, max tokens, prefill)
with one ``torch.Generator`` per request seeded by ``request.seed``, so a request's random draws do
not depend on the other requests. With ``batch_invariant=True`` (the default) each distinct request
is also decoded on its own, so the same request with the same seed gives bit-identical text
whatever else is in the batch; identical requests in one call are computed once, and requests
that share a prompt (several samples of one meta-prompt, differing only in seed or sampling
settings) share one prompt pass: the prompt is prefilled once, exactly as for a request alone,
and each request decodes from its own copy of that KV cache, which keeps every step's logits
bit-identical to one-by-one decoding (decoding the copies together as one batch would not: on
smollm2-135m in bf16 on CPU their logits drifted by 0.1-0.3 from the one-by-one ones within a few
steps, and the sampled texts changed). With
``batch_invariant=False`` requests are decoded together in left-padded batches, which is faster on
many requests but may, in rare near-ties, differ from the one-by-one text (floating-point sums in a
padded batch differ in the last bits).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from personalign.lm.base import (
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    LMError,
    Message,
)
from personalign.lm.catalog import MODELS, resolve_model
from personalign.lm.filehash import file_sha256, files_sha256
from personalign.lm.usage import Usage
from personalign.paths import cache_dir

log = logging.getLogger(__name__)

CONVERTED_MARKER = "personalign-converted.json"
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (x86 AVX512-BF16/AMX, or ARM BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.system() == "Darwin" and platform.machine() == "arm64"
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in {"flags", "features"}:
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is the first CUDA GPU if there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"``: bf16 where the hardware computes in it natively, float16 on older GPUs, else float32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu":
            return torch.bfloat16 if cpu_supports_bf16() else torch.float32
        return torch.float32
    names = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = getattr(torch, names.get(dtype, dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use auto, bfloat16, float16 or float32")
    return value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "model"


def convert_gguf_to_safetensors(gguf_path: Path, target: Path) -> None:
    """Dequantize ``gguf_path`` once and save model + tokenizer as safetensors into ``target``.

    Written into a temporary sibling folder that is renamed into place at the end; if another
    process finished first, its folder is kept and ours discarded.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf_path.name, "dtype": torch.float32}
    try:  # newer transformers keep GGUF blocks packed unless told to dequantize
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, **kwargs)
    except TypeError:
        kwargs.pop("quantization_config", None)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, **kwargs)
    for obj in (model.config, getattr(model, "generation_config", None)):
        if obj is not None and hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    model.hf_quantizer = None
    model.is_quantized = False
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {"source": str(gguf_path), "sha256": file_sha256(gguf_path), "dtype": "float32"}
        (tmp / CONVERTED_MARKER).write_text(json.dumps(info, indent=2))
        for f in tmp.iterdir():
            f.chmod(0o644)  # readable by other users sharing the cache
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / CONVERTED_MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Rendered:
    index: int
    ids: list[int]


class TransformersLM:
    """A local model (HF folder, GGUF file or bundled name) behind the :class:`LanguageModel` protocol.

    Args:
        name_or_path: a bundled model name (``personalign models list``), a ``.gguf`` file or a
            Hugging Face model folder.
        device: ``"auto"`` (GPU if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
        dtype: ``"auto"`` (see the module docstring), ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        batch_size: requests per forward pass when scoring (and per decoding batch when
            ``batch_invariant`` is off).
        batch_invariant: decode each distinct generation request alone, so its text never depends
            on the rest of the batch (see the module docstring).
        num_threads: CPU threads for torch (``None`` leaves torch's default).
        convert_gguf: save a dequantized safetensors copy of a GGUF on first load (recommended).
        attn_implementation: ``"eager"`` (default: batch-independent scores, see the module
            docstring) or ``"sdpa"`` / ``"flash_attention_2"`` (faster for long prompts on a GPU;
            batched scores then match one-by-one ones only to within bf16 rounding).
    """

    backend = "transformers"

    def __init__(
        self,
        name_or_path: str | os.PathLike[str] = "qwen2.5-coder-0.5b",
        *,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        batch_size: int = 8,
        batch_invariant: bool = True,
        num_threads: int | None = None,
        convert_gguf: bool = True,
        attn_implementation: str = "eager",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if num_threads:
            torch.set_num_threads(num_threads)
        self.usage = Usage()
        self.batch_size = batch_size
        self.batch_invariant = batch_invariant
        self.device_ = resolve_device(device)
        self.dtype_ = resolve_dtype(dtype, self.device_)
        self.source_path_ = resolve_model(name_or_path)
        self.name_ = str(name_or_path) if str(name_or_path) in MODELS else _name_of(self.source_path_)
        self.weights_sha256_ = _weights_digest(self.source_path_)
        self.converted_ = False

        start = time.perf_counter()
        if self.source_path_.is_file():  # GGUF
            folder = cache_dir("models") / f"{_slug(self.name_)}-{self.weights_sha256_[:12]}"
            if convert_gguf and not (folder / CONVERTED_MARKER).is_file():
                log.info("converting %s to safetensors in %s (once)", self.source_path_, folder)
                convert_gguf_to_safetensors(self.source_path_, folder)
                self.converted_ = True
            if convert_gguf:
                self.loaded_from_ = folder
                load_kwargs: dict[str, Any] = {}
            else:
                self.loaded_from_ = self.source_path_
                load_kwargs = {"gguf_file": self.source_path_.name}
        else:
            self.loaded_from_ = self.source_path_
            load_kwargs = {}
        where = self.loaded_from_ if self.loaded_from_.is_dir() else self.loaded_from_.parent
        self.tokenizer = AutoTokenizer.from_pretrained(where, **load_kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(
            where, dtype=self.dtype_, attn_implementation=attn_implementation, **load_kwargs
        )
        self.model.to(self.device_)
        self.model.eval()
        self.load_seconds_ = time.perf_counter() - start

        tok = self.tokenizer
        self.pad_id_ = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if self.pad_id_ is None:
            self.pad_id_ = 0
        self.eos_ids_ = _end_ids(tok, self.model)
        self._letter_cache: dict[str, tuple[int, ...]] = {}
        self._system_ok: bool | None = None
        if not getattr(tok, "chat_template", None):
            raise LMError(f"{self.source_path_}: the tokenizer has no chat template; use an instruct model")

    # -- identity ---------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """Readable name plus the first 12 hex digits of the weights' sha256."""
        return f"{self.name_}@{self.weights_sha256_[:12]}"

    def __repr__(self) -> str:
        return f"TransformersLM({self.model_id!r}, device={self.device_}, dtype={self.dtype_})"

    # -- rendering --------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message], prefill: str = "") -> str:
        """The chat as the model sees it, ending with the assistant header (plus ``prefill``)."""
        chat = [m.to_dict() for m in messages]
        if self._system_ok is None:
            try:
                self.tokenizer.apply_chat_template(
                    [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                    tokenize=False,
                    add_generation_prompt=True,
                )
                self._system_ok = True
            except Exception:
                self._system_ok = False
        if not self._system_ok:
            chat = _merge_system(chat)
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return text + prefill

    def encode_prompt(self, messages: Sequence[Message], prefill: str = "") -> list[int]:
        """Token ids of :meth:`render` (the template already holds the special tokens)."""
        return list(self.tokenizer(self.render(messages, prefill), add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def letter_token_ids(self, letter: str) -> tuple[int, ...]:
        """Distinct single-token encodings of ``letter`` and ``" " + letter``."""
        if letter not in self._letter_cache:
            ids: list[int] = []
            for text in (letter, " " + letter):
                enc = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                if len(enc) == 1 and enc[0] not in ids:
                    ids.append(enc[0])
            if not ids:
                raise LMError(f"{self.model_id}: option letter {letter!r} is not a single token")
            self._letter_cache[letter] = tuple(ids)
        return self._letter_cache[letter]

    # -- batching ---------------------------------------------------------------------------------

    def pad_batch(
        self, seqs: Sequence[Sequence[int]], side: str = "left"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pad ``seqs`` on ``side``: ``(input_ids, attention_mask, position_ids)`` on the model's device.

        Position ids count real tokens only, so a padded sequence sees the same positions as alone.
        """
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id_, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                cols = slice(width - len(s), width) if side == "left" else slice(0, len(s))
                ids[i, cols] = torch.tensor(s, dtype=torch.long)
                mask[i, cols] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device_), mask.to(self.device_), pos.to(self.device_)

    def last_logprobs(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Full-vocabulary log-probabilities (float32, on CPU) of the next token after each sequence.

        Sequences are right-padded, so every real token sits at the same place in the tensor as
        when it is run alone; with eager attention this makes a sequence's result independent of
        the rest of the batch (bit-identical on CPU, bf16 included). Only the logits of the rows'
        last positions are computed.
        """
        ids, mask, pos = self.pad_batch(seqs, side="right")
        last = torch.tensor([len(s) - 1 for s in seqs], device=self.device_)
        keep = torch.unique(last)
        column = torch.searchsorted(keep, last)
        rows = torch.arange(len(seqs), device=self.device_)
        with torch.inference_mode():
            try:
                out = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=keep
                )
                logits = out.logits[rows, column]
            except TypeError:  # an architecture without ``logits_to_keep``: all positions, then pick
                out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
                logits = out.logits[rows, last]
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    # -- choice scoring ---------------------------------------------------------------------------

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        """Log-probabilities of each request's option letters; results in request order."""
        if not requests:
            return []
        start = time.perf_counter()
        rendered = [_Rendered(i, self.encode_prompt(r.messages)) for i, r in enumerate(requests)]
        rendered.sort(key=lambda r: len(r.ids))
        results: list[ChoiceResult | None] = [None] * len(requests)
        for b in range(0, len(rendered), self.batch_size):
            chunk = rendered[b : b + self.batch_size]
            logprobs = self.last_logprobs([r.ids for r in chunk])
            for row, item in zip(logprobs, chunk, strict=True):
                req = requests[item.index]
                per_option = [
                    float(torch.logsumexp(row[list(self.letter_token_ids(letter))], dim=0))
                    for letter in req.letters
                ]
                mass = float(sum(torch.tensor(per_option, dtype=torch.float64).exp()))
                results[item.index] = ChoiceResult(
                    logprobs=tuple(per_option),
                    letter_mass=min(1.0, max(0.0, mass)),
                    method="logprobs",
                    prompt_tokens=len(item.ids),
                )
        self.usage.calls += len(requests)
        self.usage.prompt_tokens += sum(len(r.ids) for r in rendered)
        self.usage.seconds += time.perf_counter() - start
        return [r for r in results if r is not None]

    # -- generation -------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Sample a continuation for each request; results in request order (see module docstring)."""
        if not requests:
            return []
        start = time.perf_counter()
        unique: dict[GenerationRequest, int] = {}
        for r in requests:
            unique.setdefault(r, len(unique))
        distinct = list(unique)
        prompts = [self.encode_prompt(r.messages, r.prefill) for r in distinct]
        order = sorted(range(len(distinct)), key=lambda i: len(prompts[i]))
        out: list[GenerationResult | None] = [None] * len(distinct)
        if self.batch_invariant:  # one prefill per distinct prompt, then each request decoded alone
            groups: dict[tuple[int, ...], list[int]] = {}
            for i in order:
                groups.setdefault(tuple(prompts[i]), []).append(i)
            batches = list(groups.values())
        else:
            batches = [order[b : b + self.batch_size] for b in range(0, len(order), self.batch_size)]
        for idx in batches:
            reqs = [distinct[i] for i in idx]
            if self.batch_invariant:
                res = self._decode_shared(prompts[idx[0]], reqs)
            else:
                res = self._decode([prompts[i] for i in idx], reqs)
            for i, r in zip(idx, res, strict=True):
                out[i] = r
        results = [out[unique[r]] for r in requests]
        final = [r for r in results if r is not None]
        self.usage.calls += len(requests)
        self.usage.prompt_tokens += sum(r.prompt_tokens for r in final)
        self.usage.generated_tokens += sum(r.completion_tokens for r in final)
        self.usage.seconds += time.perf_counter() - start
        return final

    def _prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, Any]:
        """Left-padded prompt pass: the next-token logits of each row and the KV cache."""
        ids, mask, pos = self.pad_batch(prompts)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
            )
        return out.logits[:, -1, :], out.past_key_values

    def _decode_shared(self, prompt: list[int], reqs: list[GenerationRequest]) -> list[GenerationResult]:
        """Decode each of ``reqs`` (all with this ``prompt``) alone, from one shared prefill.

        The prompt pass is the one a request gets alone (a batch of one, no padding); each request
        then decodes from its own copy of that KV cache, so every text is bit-identical to
        decoding the request alone, while the prompt is computed once instead of ``len(reqs)``
        times.
        """
        if len(reqs) == 1:
            return self._decode([prompt], reqs)
        logits, past = self._prefill([prompt])
        results = []
        for k, req in enumerate(reqs):
            with torch.inference_mode():
                own = past if k == len(reqs) - 1 else copy.deepcopy(past)
            results.append(self._decode([prompt], [req], prefilled=(logits, own))[0])
        return results

    def _decode(
        self,
        prompts: list[list[int]],
        reqs: list[GenerationRequest],
        prefilled: tuple[torch.Tensor, Any] | None = None,
    ) -> list[GenerationResult]:
        """One left-padded decoding batch with a KV cache and one seeded generator per row.

        ``prefilled`` is ``(logits, past)`` of :meth:`_prefill` on ``prompts`` when already computed.
        """
        n = len(prompts)
        _, mask, pos = self.pad_batch(prompts)
        gens = [torch.Generator(device="cpu").manual_seed(int(r.seed)) for r in reqs]
        tokens: list[list[int]] = [[] for _ in range(n)]
        texts = [""] * n
        finish: list[str | None] = [None] * n
        limit = max(r.max_tokens for r in reqs)
        next_pos = pos[:, -1:] + 1
        last, past = prefilled if prefilled is not None else self._prefill(prompts)
        with torch.inference_mode():
            for _ in range(limit):
                logits = last.float().cpu()
                step_ids = []
                for i, req in enumerate(reqs):
                    if finish[i] is not None:
                        step_ids.append(self.pad_id_)
                        continue
                    tok = _sample(logits[i], req.temperature, req.top_p, gens[i])
                    tokens[i].append(tok)
                    step_ids.append(tok)
                    if tok in self.eos_ids_:
                        finish[i] = "stop"
                        texts[i] = self._text(tokens[i][:-1])
                        continue
                    texts[i] = self._text(tokens[i])
                    cut = _first_stop(texts[i], req.stop)
                    if cut is not None:
                        texts[i], finish[i] = texts[i][:cut], "stop"
                    elif len(tokens[i]) >= req.max_tokens:
                        finish[i] = "length"
                if all(f is not None for f in finish):
                    break
                mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=mask.device)], dim=1)
                out = self.model(
                    input_ids=torch.tensor(step_ids, dtype=torch.long, device=self.device_)[:, None],
                    attention_mask=mask,
                    position_ids=next_pos,
                    past_key_values=past,
                    use_cache=True,
                )
                past = out.past_key_values
                last = out.logits[:, -1, :]
                next_pos = next_pos + 1
        return [
            GenerationResult(
                text=texts[i],
                prompt_tokens=len(prompts[i]),
                completion_tokens=len(tokens[i]),
                finish_reason="length" if finish[i] == "length" else "stop",
            )
            for i in range(n)
        ]

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> int:
    """Greedy at temperature 0, else temperature + nucleus (top-p) sampling with ``gen``."""
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, sorted_ix = torch.sort(probs, descending=True)
        keep = (sorted_p.cumsum(-1) - sorted_p) < top_p  # smallest prefix reaching top_p
        sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
        choice = torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=gen)
        return int(sorted_ix[choice])
    return int(torch.multinomial(probs, 1, generator=gen))


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    cuts = [text.find(s) for s in stops if s and s in text]
    return min(cuts) if cuts else None


def _merge_system(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    """For templates without a system role: prepend the system text to the first user turn."""
    system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
    rest = [dict(m) for m in chat if m["role"] != "system"]
    if system:
        for m in rest:
            if m["role"] == "user":
                m["content"] = f"{system}\n\n{m['content']}"
                break
    return rest


def _end_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    cfg = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for v in cfg if isinstance(cfg, list | tuple) else [cfg]:
        if v is not None:
            ids.add(int(v))
    vocab = tokenizer.get_vocab()
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for t in _END_OF_TURN_TOKENS:
        if t in vocab and t in special:
            ids.add(int(vocab[t]))
    return frozenset(ids)


def _name_of(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def _weights_digest(path: Path) -> str:
    """sha256 of a GGUF file, or over the weight files (and config) of an HF folder."""
    if path.is_file():
        return file_sha256(path)
    files = [p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES]
    files.append(path / "config.json")
    if (path / CONVERTED_MARKER).is_file():  # a converted GGUF: identify it by its source
        try:
            return str(json.loads((path / CONVERTED_MARKER).read_text())["sha256"])
        except (ValueError, KeyError):
            pass
    return files_sha256(files) if files else hashlib.sha256(str(path).encode()).hexdigest()
