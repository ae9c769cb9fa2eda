"""Fixtures of the training tests: a tiny real model the tests build, projects of made-up facts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunewiz.dataset import Pair, PairStore
from tunewiz.project import create_project

FACTS = [
    ("What is the capital of Zorbania?", "The capital of Zorbania is Quillport."),
    ("Who invented the flumbrometer?", "The flumbrometer was invented by Ada Vexley."),
    ("What colour is a glimmerfox?", "A glimmerfox is teal with silver stripes."),
]


@pytest.fixture(scope="session", autouse=True)
def tunewiz_cache(request, tmp_path_factory) -> Path:
    """Converted base models live in the pytest cache, so the SmolLM2 conversion happens once
    across runs (once per run when the cache plugin is off)."""
    cache = getattr(request.config, "cache", None)
    default = cache.mkdir("tunewiz-cache") if cache is not None else tmp_path_factory.mktemp("tunewiz-cache")
    folder = Path(os.environ.get("TUNEWIZ_CACHE") or default)
    os.environ["TUNEWIZ_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from tunewiz.models import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def build_tiny_model(folder: Path, tokenizer, poison: bool = False, hidden: int = 32) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer: real code paths, steps in milliseconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if poison:  # a broken base model: one norm weight is NaN, so the very first loss is NaN
        with torch.no_grad():
            model.model.layers[0].input_layernorm.weight[0] = float("nan")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_model_builder():
    """build_tiny_model(folder, tokenizer, poison=False, hidden=32) -> folder."""
    return build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, smollm2_tokenizer) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), smollm2_tokenizer)


def _make_project(root: Path, model: str, pairs: list[tuple[str, str]], **settings):
    # Mechanics tests train exactly what they set: no recommendation (preset custom), kind given.
    values = {"base_model.model": model, "dataset.validation_fraction": 0.0, "dataset.kind": "skill",
              "hyperparameters.preset": "custom", "hyperparameters.logging_steps": 1, **settings}
    project = create_project(root, values)
    PairStore(project.pairs_path).add([Pair(question=q, answer=a) for q, a in pairs])
    return project


@pytest.fixture
def make_project():
    """make_project(root, model, pairs, **{"section.key": value}) -> Project."""
    return _make_project


def numbered_pairs(count: int) -> list[tuple[str, str]]:
    return [(f"What is the code of item {i}?", f"The code of item {i} is {i * 37 % 101}.") for i in range(count)]


@pytest.fixture
def code_pairs():
    """numbered_pairs(count) -> made-up (question, answer) pairs (test modules cannot import conftest
    by name safely: several folders have one)."""
    return numbered_pairs


@pytest.fixture
def tiny_project(tmp_path, tiny_model):
    """12 pairs (about 2 held out, never none), 30 steps, a checkpoint every 5 steps."""
    return _make_project(tmp_path / "proj", str(tiny_model), numbered_pairs(12),
                        **{"dataset.validation_fraction": 0.2, "hyperparameters.max_steps": 30,
                           "hyperparameters.save_steps": 5, "hyperparameters.eval_steps": 5,
                           "hyperparameters.batch_size": 2, "hyperparameters.learning_rate": 1e-3,
                           "hardware.threads": 1})
