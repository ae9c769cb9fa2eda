"""Sample answers: each checkpoint's greedy answer to a few held-out questions.

A person judges what a checkpoint learned faster from three answers beside their
references than from a loss curve. Answers are rendered with the run's template
and cached per checkpoint in `checkpoint-<step>/samples.json`; the cache is reused
while the questions, template and length limit stay the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable

from tunewiz.checkpoints import CheckpointInfo, CheckpointReport, read_run_config
from tunewiz.dataset import Pair, PairStore, project_split
from tunewiz.project import Project, atomic_write_text
from tunewiz.runs import RunSpec

SAMPLES_FILE = "samples.json"
DEFAULT_QUESTIONS = 3
DEFAULT_MAX_TOKENS = 64


@dataclass
class SampleAnswer:
    pair_id: str
    question: str
    reference: str
    answer: str


def held_out_pairs(project: Project, cfg: RunSpec, limit: int) -> tuple[list[Pair], str]:
    """Up to `limit` validation pairs of the run (by the ids run.json recorded), and their origin.

    Without validation pairs, training pairs stand in (said in the origin), so a
    person still sees something."""
    store = PairStore(project.pairs_path)
    if cfg.validation_ids:
        pairs = [store.get(i) for i in cfg.validation_ids if i in store]
    else:
        pairs = project_split(project)[1]
    if pairs:
        return pairs[:limit], "validation"
    train = [store.get(i) for i in cfg.train_ids if i in store] or project_split(project)[0]
    return train[:limit], "train (the run has no validation pairs)"


def _cache_key(pairs: list[Pair], cfg: RunSpec, max_tokens: int) -> str:
    text = json.dumps([[p.id, p.question, p.system] for p in pairs] + [cfg.family, cfg.system_prompt, max_tokens])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_samples(checkpoint: CheckpointInfo, key: str) -> list[SampleAnswer] | None:
    try:
        data = json.loads((checkpoint.path / SAMPLES_FILE).read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        return [SampleAnswer(**a) for a in data["answers"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sample_answers(project: Project, report: CheckpointReport, checkpoints: list[CheckpointInfo],
                   questions: int = DEFAULT_QUESTIONS, max_tokens: int = DEFAULT_MAX_TOKENS,
                   on_progress: Callable[[str], None] | None = None) -> dict[int, list[SampleAnswer]]:
    """Step -> sample answers for each checkpoint; computed once, then read from samples.json."""
    cfg = read_run_config(report.run)
    pairs, _origin = held_out_pairs(project, cfg, questions)
    key = _cache_key(pairs, cfg, max_tokens)
    results: dict[int, list[SampleAnswer]] = {}
    missing = []
    for checkpoint in checkpoints:
        cached = cached_samples(checkpoint, key)
        if cached is not None:
            results[checkpoint.step] = cached
        else:
            missing.append(checkpoint)
    if not missing or not pairs:
        return results | {c.step: [] for c in missing}

    from tunewiz.chat import HFAnswerer
    from tunewiz.basemodel import check_base

    check_base(cfg.base_path, missing[0].path, report.run.config_path)
    if on_progress:
        on_progress(f"Loading {cfg.base_path} with {len(missing)} checkpoint adapters...")
    model = HFAnswerer(cfg.base_path, cfg.family, cfg.system_prompt,
                       adapters={f"step{c.step}": c.path for c in missing})
    for n, checkpoint in enumerate(missing, 1):
        model.use_adapter(f"step{checkpoint.step}")
        answers = []
        for q, p in enumerate(pairs, 1):
            if on_progress:
                on_progress(f"Sample answers: checkpoint {checkpoint.step} ({n} of {len(missing)}), "
                            f"question {q} of {len(pairs)}...")
            answers.append(SampleAnswer(p.id, p.question, p.answer,
                                        model.answer(p.question, max_tokens, system=p.system or cfg.system_prompt)))
        atomic_write_text(checkpoint.path / SAMPLES_FILE, json.dumps(
            {"key": key, "answers": [asdict(a) for a in answers]}, indent=2, ensure_ascii=False) + "\n")
        results[checkpoint.step] = answers
    return results
