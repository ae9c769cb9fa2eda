"""The chat template an export carries renders exactly what training rendered; the Modelfile too."""

from __future__ import annotations

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tunewiz.export.modelfile import ollama_name, render_modelfile
from tunewiz.templates import hf_chat_template, ollama_template, render_prompt

FAMILIES = ("chatml", "llama3", "llama2", "alpaca")


def render(template: str, messages, generation_prompt: bool) -> str:
    # The environment transformers uses for chat templates.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=generation_prompt,
                                            eos_token="</s>", bos_token="<s>")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("system", ["", "Be brief."])
def test_jinja_template_matches_render_prompt(family, system):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "What is X?"}]
    assert render(hf_chat_template(family), messages, True) == render_prompt(family, "What is X?", system)


def test_model_family_keeps_the_tokenizer_template():
    assert hf_chat_template("model") is None


def test_modelfile():
    text = render_modelfile("facts-q4_k_m.gguf", "chatml", "Answer briefly.")
    template, stops = ollama_template("chatml")
    assert text.startswith("FROM ./facts-q4_k_m.gguf\n")
    assert f'TEMPLATE """{template}"""' in text
    assert all(f'PARAMETER stop "{stop}"' in text for stop in stops)
    assert 'SYSTEM """Answer briefly."""' in text
    assert ollama_name("My Project!") == "my-project"


class _Tokens:
    """What render_sample reads of a tokenizer for these families: its BOS and EOS text."""
    bos_token, eos_token = "<s>", "</s>"


CHAT = [("I want to cook.", "What do you have?"), ("Chicken and rice.", "Make a stir-fry."),
        ("How long?", "25 minutes.")]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("system", ["", "You are a cook."])
def test_a_conversation_renders_as_the_exported_template_does(family, system):
    from tunewiz.templates import render_sample

    history = [{"role": r, "content": t} for q, a in CHAT[:-1] for r, t in (("user", q), ("assistant", a))]
    sample = render_sample(family, CHAT[-1][0], CHAT[-1][1], system, _Tokens(), history)
    messages = ([{"role": "system", "content": system}] if system else []) + history + [
        {"role": "user", "content": CHAT[-1][0]}, {"role": "assistant", "content": CHAT[-1][1]}]
    assert "".join(text for text, _ in sample.segments) == render(hf_chat_template(family), messages, False).rstrip("\n")
    trained = [text for text, on in sample.segments if on]
    assert len(trained) == 3 and all(answer in text for (_, answer), text in zip(CHAT, trained))
    assert not any(q in text for q, _ in CHAT for text in trained)


def test_the_label_mask_of_a_three_turn_sample():
    """Every assistant token is trained on, every user and system token is masked (real tokenizer)."""
    from transformers import AutoTokenizer

    from tunewiz.models import smollm2_gguf_path
    from tunewiz.templates import render_sample, tokenize_sample

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    history = [{"role": r, "content": t} for q, a in CHAT[:-1] for r, t in (("user", q), ("assistant", a))]
    history[1]["weight"] = 0
    sample = render_sample("chatml", CHAT[-1][0], CHAT[-1][1], "You are a cook.", tokenizer, history)
    tokens = tokenize_sample(tokenizer, sample, 512)
    trained = tokenizer.decode([t for t, label in zip(tokens.input_ids, tokens.labels) if label != -100])
    masked = tokenizer.decode([t for t, label in zip(tokens.input_ids, tokens.labels) if label == -100])
    assert trained == "Make a stir-fry.<|im_end|>25 minutes.<|im_end|>"
    assert "What do you have?" in masked and "You are a cook." in masked
    assert all(q in masked for q, _ in CHAT)
