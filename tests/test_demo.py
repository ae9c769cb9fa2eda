"""The one-command offline demo, shortened (few steps), as a newcomer runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tunewiz.dataset import PairStore
from tunewiz.project import Project


@pytest.mark.slow
def test_short_demo_runs_every_step_offline(tmp_path):
    target = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "tunewiz", "demo", str(target), "--steps", "4", "--generate", "1"],
                          capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL,
                          env={**_offline_env()})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for number in range(1, 7):
        assert f"[{number}/6]" in out
    assert "Base vs fine-tuned" in out and "fine-tuned:" in out
    assert "base model: " in out and "reworded questions recalled" in out
    assert "data: facts (set in the project" in out  # the plan, printed when training starts
    # the most of any checkpoint, or one within the check's noise of it that trained longer
    assert "Best: step " in out and re.search(
        r"reworded questions \((within \d+ of the )?most of (any checkpoint|the \d+ checkpoints that kept everyday)", out)

    project = Project.load(target)
    store = PairStore(project.pairs_path)
    assert store.counts()["accepted"] == 60  # the handbook's facts
    # plus what the local model generated, which varies from run to run (the server's seed is random): what
    # the demo says of it matches what it stored
    generated = [p for p in store if p.status != "accepted"]
    if any(p.status == "pending" for p in generated):
        assert "The generated pairs stay 'pending' for you to review" in out
    elif generated:
        assert "None of the generated pairs passed the checks (they are kept as rejected" in out
    else:
        assert "The local model returned no usable pair this time" in out
    assert re.search(r"Finished: \d+ pairs? added in", out)  # the generation step's summary
    assert project.config.checkpoint.pick == "best"
    export = target / "exports" / "velmora-handbook"
    assert (export / "velmora-handbook-q8_0.gguf").stat().st_size > 50_000_000
    modelfile = (export / "Modelfile").read_text()
    assert "FROM ./velmora-handbook-q8_0.gguf" in modelfile and "<|im_start|>" in modelfile
    smoke = json.loads((export / "smoke-test.json").read_text())
    assert smoke["files"]["velmora-handbook-q8_0.gguf"]["loaded"] is True


def test_demo_refuses_a_folder_that_holds_something(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    done = subprocess.run([sys.executable, "-m", "tunewiz", "demo", str(tmp_path)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "the folder is not empty; nothing was changed" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def _offline_env() -> dict[str, str]:
    import os

    # No hub, no telemetry: the demo must not need the network.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
