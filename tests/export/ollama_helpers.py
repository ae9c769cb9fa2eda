"""Put the stand-in `ollama` (fake_ollama.py) first on PATH; read back what it was asked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

FAKE = Path(__file__).with_name("fake_ollama.py")


def install_fake_ollama(monkeypatch, folder: Path, answer: str = "Hello.", fail: str = "") -> Path:
    """An `ollama` on PATH that records its calls; the log file it writes."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "ollama"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(0o755)
    log = folder / "ollama-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_OLLAMA_LOG", str(log))
    monkeypatch.setenv("FAKE_OLLAMA_ANSWER", answer)
    monkeypatch.setenv("FAKE_OLLAMA_FAIL", fail)
    return log


def ollama_calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()]
