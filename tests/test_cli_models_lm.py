"""`personalign models …` and `personalign lm …` through the real CLI app."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from personalign.cli.app import app

runner = CliRunner()
_REAL_CACHE = os.environ.get("PERSONALIGN_CACHE")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LM-call cache and hash memos in a temporary folder (converted models stay shared)."""
    monkeypatch.setenv("PERSONALIGN_CACHE", str(tmp_path / "cache"))


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_models_list() -> None:
    res = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "smollm2-135m" in res.output and "qwen2.5-coder-0.5b (default)" in res.output
    assert "qwen2.5-coder-1.5b" in res.output and "Apache-2.0" in res.output
    row = next(line for line in res.output.splitlines() if "smollm2-135m" in line)
    assert "yes" in row and "94 MiB" in row


def test_models_pull_and_unknown() -> None:
    res = runner.invoke(app, ["models", "pull", "smollm2-135m", "-q"])
    assert res.exit_code == 0, res.output
    assert "sha256 verified" in res.output
    bad = runner.invoke(app, ["models", "pull", "nope"])
    assert bad.exit_code == 2 and "unknown model 'nope'" in _plain(bad.output)


def test_every_command_has_help() -> None:
    for cmd in (
        ["models"],
        ["models", "list"],
        ["models", "pull"],
        ["lm"],
        ["lm", "score"],
        ["lm", "generate"],
    ):
        res = runner.invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, cmd
    res = runner.invoke(app, ["lm", "serve", "--help"])
    assert res.exit_code == 0 and "--port" in res.output


def test_lm_score_with_simulated_backend() -> None:
    args = [
        "lm",
        "score",
        "-m",
        "simulated",
        "-q",
        "Do you like cats?",
        "-o",
        "Yes",
        "-o",
        "No",
        "--no-cache",
    ]
    res = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    probs = [float(x) for x in re.findall(r"\b(0\.\d{4}|1\.0000)\b", res.output)]
    assert len(probs) >= 2 and abs(probs[0] + probs[1] - 1) < 1e-3
    assert "letter mass" in res.output and "simulated" in res.output


def test_lm_errors_are_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    res = runner.invoke(app, ["lm", "score", "-m", "nope", "-q", "Q", "-o", "a", "--no-cache"])
    assert res.exit_code == 2 and "unknown model 'nope'; available:" in _plain(res.output)
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["lm", "generate", "-m", "simulated", "-p", "hi", "--temperature", "-1"])
    assert res.exit_code == 2


def test_lm_generate_with_simulated_backend() -> None:
    args = ["lm", "generate", "-m", "simulated", "-p", "Say something.", "--max-tokens", "5", "--seed", "3"]
    first = runner.invoke(app, [*args, "--no-cache"])
    second = runner.invoke(app, [*args, "--no-cache"])
    assert first.exit_code == 0, first.output
    assert first.output == second.output and first.output.strip()


@pytest.mark.model
def test_lm_score_and_generate_with_smollm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the real cache root, so the converted model is reused; the call cache goes to a temp file
    if _REAL_CACHE is None:
        monkeypatch.delenv("PERSONALIGN_CACHE")
    else:
        monkeypatch.setenv("PERSONALIGN_CACHE", _REAL_CACHE)
    args = ["lm", "score", "-m", "smollm2-135m", "-q", "Is the sky blue?", "-o", "Yes", "-o", "No"]
    args += ["--cache-file", str(tmp_path / "calls.sqlite")]
    res = runner.invoke(app, [*args, "--persona", "You answer with a single letter."], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "smollm2-135m@b179c9523d0e" in res.output
    mass = float(re.search(r"letter mass: ([0-9.]+)", res.output).group(1))
    assert 0.0 < mass <= 1.0
    assert (tmp_path / "calls.sqlite").is_file(), "the call went through the cache file given"
    gen = ["lm", "generate", "-m", "smollm2-135m", "-p", "Say hi.", "--max-tokens", "5", "--temperature", "0"]
    res = runner.invoke(app, [*gen, "--no-cache"])
    assert res.exit_code == 0 and res.output.strip(), res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lm_serve_starts_a_real_server(tmp_path: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "personalign.cli.app", "lm", "serve", "-m", "simulated", "--port", str(port)]
    env = {**os.environ, "PERSONALIGN_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"server exited early: {proc.stdout.read() if proc.stdout else ''}"
            assert time.monotonic() < deadline, "server did not start within 60 s"
            time.sleep(0.3)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()
        assert models["data"][0]["backend"] == "simulated"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
