"""`personalign lm …`: score a multiple-choice question, generate text, or serve a model over an
OpenAI-compatible HTTP API (thin shells over :func:`personalign.lm.factory.get_lm`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from personalign.lm.catalog import DEFAULT_MODEL

app = typer.Typer(help="Use a language model: score, generate, serve.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="bundled model name, .gguf file, HF folder, or BACKEND:MODEL (e.g. openai:gpt-4o-mini)",
    ),
]
BackendOpt = Annotated[
    str | None, typer.Option("--backend", "-b", help="transformers, openai, simulated or llamacpp")
]
DeviceOpt = Annotated[str | None, typer.Option(help="transformers backend: auto, cpu, cuda, cuda:1 …")]
DtypeOpt = Annotated[str | None, typer.Option(help="transformers backend: auto, bfloat16, float16, float32")]
CacheOpt = Annotated[
    bool, typer.Option("--cache/--no-cache", help="use the persistent LM-call cache (default: on)")
]
CachePathOpt = Annotated[
    Path | None, typer.Option("--cache-file", help="cache file (default: in the cache dir)")
]


@contextmanager
def _clear_errors():
    """Known failures (missing model, unknown name, bad request, server down) as one red line."""
    from personalign.lm.base import LMError
    from personalign.lm.catalog import ModelIntegrityError
    from personalign.registry import UnknownNameError

    try:
        yield
    except (UnknownNameError, FileNotFoundError, ModelIntegrityError, LMError, ImportError, ValueError) as e:
        err_console.print(f"[bold red]error:[/] {e}", soft_wrap=True)
        raise typer.Exit(2) from None


def _load(model: str, backend: str | None, device: str | None, dtype: str | None, cache: Any) -> Any:
    from personalign.lm.factory import get_lm

    kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
    with console.status(f"loading {model} …"):
        return get_lm(model, backend=backend, cache=cache, **kwargs)


def _cache_arg(cache: bool, cache_file: Path | None) -> bool | Path:
    return cache_file if (cache and cache_file is not None) else cache


@app.command("score")
def score_cmd(
    question: Annotated[str, typer.Option("--question", "-q", help="the question text")],
    option: Annotated[list[str], typer.Option("--option", "-o", help="an answer option (repeat, in order)")],
    persona: Annotated[str | None, typer.Option(help="persona / system prompt")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    cache: CacheOpt = True,
    cache_file: CachePathOpt = None,
) -> None:
    """Print the probability the model puts on each option letter, and the letter mass."""
    from personalign.lm.chat import render_choice

    with _clear_errors():
        request = render_choice(question, option, system=persona)
        lm = _load(model, backend, device, dtype, _cache_arg(cache, cache_file))
        (result,) = lm.score_choices([request])
    table = Table(title=f"{lm.model_id} ({lm.backend}, {result.method})", title_justify="left")
    for col, justify in (
        ("letter", "left"),
        ("option", "left"),
        ("probability", "right"),
        ("logprob", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for j, (text, p, lp) in enumerate(zip(option, result.probs, result.logprobs, strict=True)):
        mark = " *" if j == result.pred else ""
        table.add_row(request.letters[j] + mark, text, f"{p:.4f}", f"{lp:.3f}")
    console.print(table)
    console.print(f"letter mass: {result.letter_mass:.4f}   prompt tokens: {result.prompt_tokens}")


@app.command("generate")
def generate_cmd(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="the user message")],
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    prefill: Annotated[str, typer.Option(help="text the answer starts with (not printed)")] = "",
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 128,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy")] = 0.7,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 1.0,
    seed: int = 0,
    stop: Annotated[list[str] | None, typer.Option(help="stop string (repeatable)")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    cache: CacheOpt = True,
    cache_file: CachePathOpt = None,
) -> None:
    """Generate a reply to PROMPT and print it."""
    from personalign.lm.base import GenerationRequest, Message

    with _clear_errors():
        messages = ((Message("system", system),) if system else ()) + (Message("user", prompt),)
        request = GenerationRequest(
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=tuple(stop or ()),
            seed=seed,
            prefill=prefill,
        )
        lm = _load(model, backend, device, dtype, _cache_arg(cache, cache_file))
        (result,) = lm.generate([request])
    console.print(result.text, markup=False, highlight=False)
    err_console.print(
        f"[dim]{lm.model_id}: {result.prompt_tokens} prompt + {result.completion_tokens} generated tokens, "
        f"finish: {result.finish_reason}[/]"
    )


@app.command("serve")
def serve_cmd(
    model: ModelOpt = DEFAULT_MODEL,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8000,
    backend: BackendOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="cache answers (default: off)")] = False,
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/models)."""
    with _clear_errors():
        lm = _load(model, backend, device, dtype, cache)
        from personalign.lm.server import serve

    console.print(f"serving {lm.model_id} on http://{host}:{port}/v1")
    serve(lm, host=host, port=port)
