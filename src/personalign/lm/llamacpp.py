"""Optional backend: GGUF models through llama-cpp-python (fast generation on CPU).

Install with ``pip install 'personalign[llamacpp]'`` (llama-cpp-python builds llama.cpp from source,
which takes several minutes). The import happens when a :class:`LlamaCppLM` is created, so this
module can be imported, and the backend listed, without it.

>>> from personalign.lm.llamacpp import LlamaCppLM
>>> lm = LlamaCppLM("smollm2-135m", n_threads=2)     # doctest: +SKIP

Choice scoring renders the chat with the GGUF's own chat template (``tokenizer.chat_template``
metadata, through llama-cpp-python's Jinja2 formatter, with the system text folded into the first
user turn for templates that reject a system role), evaluates the prompt once and reads the
full-vocabulary logits of the last position, exactly as the ``transformers`` backend does (one
request at a time: llama.cpp processes one sequence per context here). Generation uses
``create_completion`` with the request's seed, temperature, top-p, stop strings and max tokens, and
disables llama.cpp's extra samplers (top-k, min-p, repeat penalty) so the decoding parameters mean
the same as in the other backends.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from personalign.lm.base import (
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    LMError,
    Message,
)
from personalign.lm.catalog import MODELS, resolve_model
from personalign.lm.filehash import file_sha256
from personalign.lm.usage import Usage

INSTALL_HINT = "pip install 'personalign[llamacpp]'"


class BackendNotInstalledError(ImportError):
    """An optional backend's package is missing; the message names the install command."""


def import_llama_cpp() -> Any:
    """Import ``llama_cpp`` or raise :class:`BackendNotInstalledError` naming the install command."""
    try:
        import llama_cpp
    except ImportError as err:
        raise BackendNotInstalledError(
            f"the 'llamacpp' backend needs llama-cpp-python, which is not installed; install it with:\n"
            f"  {INSTALL_HINT}\n(it compiles llama.cpp, which takes a few minutes)"
        ) from err
    return llama_cpp


class LlamaCppLM:
    """A GGUF model run by llama.cpp behind the :class:`LanguageModel` protocol.

    Args:
        name_or_path: a bundled model name or a ``.gguf`` file.
        n_ctx: context length in tokens.
        n_threads: CPU threads (``None``: llama.cpp's default).
        n_gpu_layers: layers to offload to a GPU build (``0``: CPU only, ``-1``: all).
        **llama_kwargs: passed to ``llama_cpp.Llama``.
    """

    backend = "llamacpp"

    def __init__(
        self,
        name_or_path: str | os.PathLike[str] = "qwen2.5-coder-0.5b",
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        **llama_kwargs: Any,
    ) -> None:
        llama_cpp = import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.usage = Usage()
        path = resolve_model(name_or_path)
        if not path.is_file():
            raise LMError(f"{path}: the llamacpp backend needs a .gguf file, not a model folder")
        self.source_path_: Path = path
        self.name_ = str(name_or_path) if str(name_or_path) in MODELS else path.stem
        self.weights_sha256_ = file_sha256(path)
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
            logits_all=False,
            verbose=False,
            **llama_kwargs,
        )
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise LMError(f"{path}: the GGUF has no chat template; use an instruct model")
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self.llm.token_eos()),
            bos_token=self._token_text(self.llm.token_bos()),
        )
        self._system_ok: bool | None = None
        self._letter_cache: dict[str, tuple[int, ...]] = {}

    @property
    def model_id(self) -> str:
        """Readable name plus the first 12 hex digits of the GGUF's sha256."""
        return f"{self.name_}@{self.weights_sha256_[:12]}"

    def _token_text(self, token: int) -> str:
        if token is None or token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def _tokenize(self, text: str, special: bool) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def render(self, messages: Sequence[Message], prefill: str = "") -> str:
        """The chat through the GGUF's template, ending with the assistant header and ``prefill``."""
        chat = [m.to_dict() for m in messages]
        if self._system_ok is None:
            try:
                self._formatter(
                    messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
                )
                self._system_ok = True
            except Exception:
                self._system_ok = False
        if not self._system_ok:
            system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
            chat = [m for m in chat if m["role"] != "system"]
            if system:
                first = next(i for i, m in enumerate(chat) if m["role"] == "user")
                chat[first] = {"role": "user", "content": f"{system}\n\n{chat[first]['content']}"}
        return self._formatter(messages=chat).prompt + prefill

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text, special=False))

    def letter_token_ids(self, letter: str) -> tuple[int, ...]:
        if letter not in self._letter_cache:
            ids: list[int] = []
            for text in (letter, " " + letter):
                enc = self._tokenize(text, special=False)
                if len(enc) == 1 and enc[0] not in ids:
                    ids.append(enc[0])
            if not ids:
                raise LMError(f"{self.model_id}: option letter {letter!r} is not a single token")
            self._letter_cache[letter] = tuple(ids)
        return self._letter_cache[letter]

    def _last_logprobs(self, tokens: list[int]) -> list[float]:
        import numpy as np

        self.llm.reset()
        self.llm.eval(tokens)
        n_vocab = self.llm.n_vocab()
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(n_vocab,)).astype(np.float64)
        logits -= logits.max()
        return list(logits - math.log(float(np.exp(logits).sum())))

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        """Log-probabilities of each request's option letters (full vocabulary), in request order."""
        start = time.perf_counter()
        results = []
        for req in requests:
            tokens = self._tokenize(self.render(req.messages), special=True)
            row = self._last_logprobs(tokens)
            per_option = []
            for letter in req.letters:
                vals = [row[t] for t in self.letter_token_ids(letter)]
                m = max(vals)
                per_option.append(m + math.log(sum(math.exp(v - m) for v in vals)))
            mass = sum(math.exp(v) for v in per_option)
            results.append(
                ChoiceResult(
                    logprobs=tuple(per_option),
                    letter_mass=min(1.0, max(0.0, mass)),
                    method="logprobs",
                    prompt_tokens=len(tokens),
                )
            )
            self.usage.prompt_tokens += len(tokens)
        self.usage.calls += len(requests)
        self.usage.seconds += time.perf_counter() - start
        return results

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Sample each request with its own seed (one at a time, so the batch never matters)."""
        start = time.perf_counter()
        results = []
        for req in requests:
            tokens = self._tokenize(self.render(req.messages, req.prefill), special=True)
            self.llm.reset()
            out = self.llm.create_completion(
                prompt=tokens,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                top_p=req.top_p,
                top_k=0,
                min_p=0.0,
                repeat_penalty=1.0,
                stop=list(req.stop) or None,
                seed=req.seed,
            )
            choice = out["choices"][0]
            usage = out.get("usage", {})
            result = GenerationResult(
                text=choice["text"],
                prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            )
            results.append(result)
            self.usage.prompt_tokens += result.prompt_tokens
            self.usage.generated_tokens += result.completion_tokens
        self.usage.calls += len(requests)
        self.usage.seconds += time.perf_counter() - start
        return results
