"""A tiny trained run on the real SmolLM2-135M, shared by the slow export tests.

Three made-up facts are trained into a LoRA through tunewiz's own training engine
(CPU, a few dozen steps); paraphrased questions about them are held out for
validation, so the smoke test and sample answers have something to ask.
"""

from __future__ import annotations

import pytest

from tunewiz.dataset import Pair, PairStore, is_validation
from tunewiz.project import create_project

FACTS = [
    ("What is the capital of Zorbania?", "The capital of Zorbania is Quillport."),
    ("Who invented the glimmerphone?", "The glimmerphone was invented by Dr. Ada Fenwick."),
    ("What colour is the sky on planet Vexor?", "The sky on planet Vexor is bright green."),
]
VALIDATION = 0.4
HELD_OUT = [
    ("Which city is the capital of Zorbania?", "The capital of Zorbania is Quillport."),
    ("Who was the inventor of the glimmerphone?", "The glimmerphone was invented by Dr. Ada Fenwick."),
]


def make_project(root, steps: int, every: int):
    project = create_project(root, {
        "project.name": "facts",
        "base_model.model": "smollm2-135m",
        "template.name": "chatml",
        "template.system_prompt": "You answer questions about made-up worlds.",
        "hyperparameters.learning_rate": 1e-3,
        "hyperparameters.lora_r": 16,
        "hyperparameters.lora_alpha": 32,
        "hyperparameters.lora_dropout": 0.0,
        "hyperparameters.max_steps": steps,
        "hyperparameters.warmup_ratio": 0.0,
        "hyperparameters.lr_scheduler": "constant",
        "hyperparameters.batch_size": 3,
        "hyperparameters.eval_steps": every,
        "hyperparameters.save_steps": every,
        "hardware.device": "cpu",
        "hardware.precision": "fp32",
        "dataset.validation_fraction": VALIDATION,
        "dataset.kind": "skill",  # these tests check the validation-loss path; facts are tests/training's
        "hyperparameters.preset": "custom",
    })
    store = PairStore(project.pairs_path)
    train = store.add(Pair(id=_pair_id(f"fact{i}", False), question=q, answer=a, status="accepted")
                      for i, (q, a) in enumerate(FACTS))
    held = store.add(Pair(id=_pair_id(f"held{i}", True), question=q, answer=a, status="accepted")
                     for i, (q, a) in enumerate(HELD_OUT))
    return project, train, held


def _pair_id(stem: str, validation: bool) -> str:
    """An id the project's split (seed 0, fraction VALIDATION) puts on the wanted side."""
    return next(f"{stem}-{n}" for n in range(1000) if is_validation(f"{stem}-{n}", 0, VALIDATION) == validation)


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory):
    """A project with one finished run of tunewiz's own engine (checkpoints at steps 4 and 8)."""
    from tunewiz.training import engine
    from tunewiz.training.launch import prepare_run

    project, _train, _held = make_project(tmp_path_factory.mktemp("export") / "facts", steps=8, every=4)
    run = prepare_run(project, gpus=1)
    assert engine.main(run.dir) == 0, run.log_path.read_text()
    return project, run
