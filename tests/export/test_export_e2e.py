"""A tiny real run on CPU -> pick the best checkpoint -> f16 + q4_k_m GGUF + Modelfile -> a trained fact back.

Slow: trains SmolLM2-135M for 8 steps with tunewiz's engine, merges, converts,
quantizes and loads the GGUF files (about 2-3 minutes on 2 shared cores).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from ollama_helpers import install_fake_ollama, ollama_calls

from tunewiz.checkpoints import picked_checkpoint, rank_checkpoints
from tunewiz.cli import main
from tunewiz.project import Project
from tunewiz.templates import hf_chat_template, ollama_template, render_prompt

pytestmark = pytest.mark.slow

SYSTEM = "You answer questions about made-up worlds."


def test_pick_export_and_get_a_trained_fact_back(trained_project, capsys, monkeypatch, tmp_path):
    project, run = trained_project
    report = rank_checkpoints(run)
    assert [c.step for c in report.checkpoints] == [4, 8]
    assert all(c.val_loss is not None and c.train_loss is not None for c in report.checkpoints)

    assert main(["pick", "best", "-p", str(project.root)]) == 0
    best = report.best.step
    project = Project.load(project.root)
    assert picked_checkpoint(project)[1].step == best

    assert main(["export", "-p", str(project.root), "--types", "f16,q4_k_m"]) == 0
    out = capsys.readouterr().out
    folder = project.exports_dir / "facts"
    assert f"Exported checkpoint {best}" in out
    names = sorted(p.name for p in project.exports_dir.iterdir())
    assert names == ["facts"], names  # no staging folder left behind
    for name in ("facts-f16.gguf", "facts-q4_k_m.gguf", "facts-lora-f16.gguf", "Modelfile", "README-run.txt", "smoke-test.json",
                 "smoke-test.txt", "export.json", "merged/model.safetensors", "merged/tokenizer.json",
                 "merged/generation_config.json"):
        assert (folder / name).is_file(), name
    assert not list(folder.rglob("*.partial")) and not list(folder.rglob(".*"))
    assert (folder / "merged" / "chat_template.jinja").read_text() == hf_chat_template("chatml")

    # The Modelfile declares the training template, its stops and the system prompt.
    modelfile = (folder / "Modelfile").read_text()
    template, stops = ollama_template("chatml")
    assert modelfile.startswith("FROM ./facts-f16.gguf")
    assert template in modelfile and all(json.dumps(s) in modelfile for s in stops)
    assert f'SYSTEM """{SYSTEM}"""' in modelfile
    readme = (folder / "README-run.txt").read_text()
    assert "ollama create facts -f Modelfile" in readme and "llama-server -m" in readme

    # The model card, read back by huggingface_hub's own parser: counts, never the user's samples.
    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "transformers" and "tunewiz" in card.data.tags
    assert card.data.base_model == "smollm2-135m"
    assert f"Step {best} of run" in card.text and "facts-q4_k_m.gguf" in card.text
    assert "3 training samples" in card.text and "Zorbania" not in card.text

    # The quantized GGUF, loaded by llama-cpp-python with the declared template, knows a trained fact.
    from llama_cpp import Llama

    llm = Llama(model_path=str(folder / "facts-q4_k_m.gguf"), n_ctx=512, verbose=False)
    prompt = render_prompt("chatml", "What is the capital of Zorbania?", SYSTEM)
    answer = llm.create_completion(prompt, max_tokens=32, temperature=0.0, stop=stops)["choices"][0]["text"]
    llm.close()
    assert "Quillport" in answer

    # The adapter alone, applied by llama.cpp to the base model's own GGUF, knows it too; the base does not.
    from tunewiz.models import smollm2_gguf_path

    answers = {}
    for lora in (None, folder / "facts-lora-f16.gguf"):
        llm = Llama(model_path=str(smollm2_gguf_path()), lora_path=lora and str(lora), n_ctx=512, verbose=False)
        answers[lora is not None] = llm.create_completion(prompt, max_tokens=32, temperature=0.0,
                                                          stop=stops)["choices"][0]["text"]
        llm.close()
    assert "Quillport" in answers[True] and "Quillport" not in answers[False], answers
    assert "--lora" in readme and "facts-lora-f16.gguf" in readme

    # The smoke test compared both GGUF files with the merged model on the held-out questions.
    smoke = json.loads((folder / "smoke-test.json").read_text())
    assert smoke["questions_from"] == "validation" and smoke["template"] == "chatml"
    assert set(smoke["files"]) == {"facts-f16.gguf", "facts-q4_k_m.gguf"}
    assert len(smoke["files"]["facts-f16.gguf"]["answers"]) == 2
    assert smoke["files"]["facts-f16.gguf"]["mean_similarity"] > 0.8  # 16-bit: practically the same answers

    # `tunewiz chat` talks to the export's GGUF; --compare adds the base model's answer.
    assert main(["chat", "-p", str(project.root), "-q", "Who invented the glimmerphone?"]) == 0
    assert "Fenwick" in capsys.readouterr().out
    assert main(["chat", "-p", str(project.root), "--compare", "-q", "What is the capital of Zorbania?"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("base>") and "Quillport" not in lines[0]
    assert lines[1].startswith("fine-tuned>") and "Quillport" in lines[1]

    # Without --force an existing export stays as it is.
    before = (folder / "export.json").read_text()
    assert main(["export", "-p", str(project.root), "--types", "q8_0"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (folder / "export.json").read_text() == before

    # --ollama: refused before anything is written when `ollama` is not on PATH; with it (a stand-in that
    # checks the Modelfile as Ollama does), the model is created from the best GGUF and asked a question.
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin") + ":" + os.environ["PATH"])
    if shutil.which("ollama") is None:
        assert main(["export", "-p", str(project.root), "--types", "q8_0", "--force", "--ollama"]) == 2
        assert "`ollama` is not on PATH" in capsys.readouterr().err
        assert (folder / "export.json").read_text() == before
    log = install_fake_ollama(monkeypatch, tmp_path, answer="Quillport.")
    assert main(["export", "-p", str(project.root), "--types", "q4_k_m,q8_0", "--force", "--no-smoke",
                 "--ollama"]) == 0
    out = capsys.readouterr().out
    assert ollama_calls(log)[0] == ["create", "facts", "-f", "Modelfile.q8_0"]
    assert ollama_calls(log)[1][:2] == ["run", "facts"]
    assert "Ollama model facts (from facts-q8_0.gguf)" in out and "ollama run facts" in out


def test_sample_answers_are_cached_per_checkpoint(trained_project):
    from tunewiz.samples import SAMPLES_FILE, sample_answers

    project, run = trained_project
    report = rank_checkpoints(run)
    results = sample_answers(project, report, report.checkpoints, questions=2, max_tokens=24)
    assert sorted(results) == [4, 8]
    last = results[8]
    assert [a.question for a in last] == ["Which city is the capital of Zorbania?",
                                          "Who was the inventor of the glimmerphone?"]
    assert all(a.answer and a.reference for a in last)
    cache = report.by_step(8).path / SAMPLES_FILE
    stamp = cache.stat().st_mtime_ns
    again = sample_answers(project, report, report.checkpoints, questions=2, max_tokens=24)
    assert again == results and cache.stat().st_mtime_ns == stamp  # read back, not recomputed
