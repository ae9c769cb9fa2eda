"""Fixtures for the wizard's tests: a project with a few real pairs, a private config folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# The snapshots and the key tests read UTF-8 glyphs whatever the machine's locale (tunewiz.tui.glyphs);
# the LANG=C test in test_e2e_tmux.py clears this for its terminal.
os.environ["TUNEWIZ_ASCII"] = "0"

from tunewiz.dataset import Pair, PairStore
from tunewiz.project import create_project

PAIRS = [
    ("What is the capital of France?", "Paris."),
    ("What is the capital of France, please?", "Paris, the capital city."),
    ("Who wrote Hamlet?", "William Shakespeare."),
    ("How many legs does a spider have?", "Eight."),
    ("What is 12 times 12?", "144."),
]


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch) -> Path:
    """Keep the recent-projects list of the tests away from the person's own."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
def qa_project(tmp_path, monkeypatch):
    """A project `proj` (opened by relative path, so pictures of screens do not show tmp paths)."""
    monkeypatch.chdir(tmp_path)
    project = create_project(Path("proj"), {"project.name": "demo"})
    project.config.project.created = "2025-01-01T00:00:00+00:00"
    project.save()
    store = PairStore(project.pairs_path)
    store.add(Pair(question=q, answer=a, id=f"p{i:03d}", source="faq.csv:%d" % (i + 2),
                   created="2025-01-01T00:00:00+00:00", updated="2025-01-01T00:00:00+00:00",
                   scores={"judge": 5 + i}) for i, (q, a) in enumerate(PAIRS))
    return project


@pytest.fixture
def make_run():
    """Writes a run folder (see write_run)."""
    return write_run


def write_run(project, run_id: str = "20250101-000000", steps: int = 40, state: str = "finished",
              val=(2.0, 1.5, 1.2, 1.3)) -> Path:
    """A finished run folder as `tunewiz.runs` defines it: status, metrics, log, checkpoints."""
    run = project.runs_dir / run_id
    (run / "checkpoints").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": state, "pid": 0, "step": steps, "max_steps": steps,
                                                 "message": "", "started": "", "ended": ""}))
    lines = []
    for step in range(1, steps + 1):
        lines.append({"type": "train", "step": step, "loss": 3.0 - step * 0.05, "lr": 1e-3,
                      "tokens_per_s": 1000.0, "mem_mb": 2000.0})
        if step % 10 == 0:
            lines.append({"type": "eval", "step": step, "val_loss": val[step // 10 - 1]})
            ckpt = run / "checkpoints" / f"checkpoint-{step}"
            ckpt.mkdir()
            (ckpt / "COMPLETE").write_text("")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "train.log").write_text("".join(f"step {s} loss {3.0 - s * 0.05:.2f}\n" for s in range(1, steps + 1)))
    return run
