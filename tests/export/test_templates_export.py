"""The chat template an export carries renders exactly what training rendered; the Modelfile too."""

from __future__ import annotations

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tunewiz.export.modelfile import modelfile_gguf, ollama_name, render_modelfile
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


def test_modelfile(tmp_path):
    text = render_modelfile("facts-q4_k_m.gguf", "chatml", "Answer briefly.")
    template, stops = ollama_template("chatml")
    assert text.startswith("FROM ./facts-q4_k_m.gguf\n")
    assert f'TEMPLATE """{template}"""' in text
    assert all(f'PARAMETER stop "{stop}"' in text for stop in stops)
    assert 'SYSTEM """Answer briefly."""' in text
    (tmp_path / "Modelfile").write_text(text)
    assert modelfile_gguf(tmp_path) is None  # the file it names does not exist
    (tmp_path / "facts-q4_k_m.gguf").write_bytes(b"GGUF")
    assert modelfile_gguf(tmp_path) == tmp_path / "facts-q4_k_m.gguf"
    assert ollama_name("My Project!") == "my-project"
