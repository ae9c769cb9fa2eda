"""Which file an export tells the user to run: the model GGUF from the manifest, never the adapter."""

from __future__ import annotations

import json

from tunewiz.exports import commands_text, list_exports, read_manifest, run_readme


def write_export(folder, types=("q8_0",), modelfile=True):
    folder.mkdir(parents=True)
    for t in types:
        (folder / f"facts-{t}.gguf").write_bytes(b"GGUF")
    (folder / "facts-lora-f16.gguf").write_bytes(b"GGUF")  # sorts before "facts-q8_0.gguf"
    if modelfile:
        (folder / "Modelfile").write_text(f"FROM ./facts-{types[0]}.gguf\n")
    (folder / "export.json").write_text(json.dumps({
        "run": "r1", "step": 40, "gguf": {t: f"facts-{t}.gguf" for t in types}, "lora_gguf": "facts-lora-f16.gguf",
        "ollama_name": "facts", "system_prompt": "Be brief.", "template": "chatml", "base_model": "smollm2-135m"}))
    return folder


def test_the_commands_run_the_model_not_the_adapter(tmp_path):
    manifest = read_manifest(write_export(tmp_path / "facts"))
    assert manifest.main_gguf == tmp_path / "facts" / "facts-q8_0.gguf"
    text = commands_text(manifest)
    model_lines = [line for line in text.splitlines() if line.strip().startswith(("llama-cli -m", "llama-server"))]
    assert model_lines and all("facts-q8_0.gguf" in line for line in model_lines[:2])
    assert "llama-cli -m BASE.gguf --lora" in text and "ollama create facts -f Modelfile" in text
    assert "-m " + str(tmp_path / "facts" / "facts-lora-f16.gguf") not in text


def test_the_first_type_asked_for_is_the_main_one_and_no_modelfile_is_said(tmp_path):
    manifest = read_manifest(write_export(tmp_path / "facts", types=("q4_k_m", "f16"), modelfile=False))
    assert manifest.main_gguf.name == "facts-q4_k_m.gguf"
    readme = run_readme(manifest)
    assert "no Modelfile was written" in readme and "ollama create" not in readme
    assert commands_text(manifest) in readme


def test_the_wizard_shows_the_readme_commands(tmp_path, project):
    from tunewiz.tui.screens.export import run_commands

    write_export(project.exports_dir / "facts")
    shown = run_commands(project, "facts")
    assert shown == commands_text(read_manifest(project.exports_dir / "facts"))
    assert "nothing exported" in run_commands(project, "other")


def test_chat_picks_the_newest_exports_model(tmp_path, project):
    from tunewiz.chat import newest_export_gguf

    write_export(project.exports_dir / "facts")
    assert newest_export_gguf(project) == project.exports_dir / "facts" / "facts-q8_0.gguf"
    (project.exports_dir / ".facts.partial-1").mkdir()  # an export being written is not one
    assert [m.folder.name for m in list_exports(project.exports_dir)] == ["facts"]


def test_the_newest_export_is_the_last_finished_not_the_last_touched(tmp_path, project):
    import os

    old = write_export(project.exports_dir / "old")
    write_export(project.exports_dir / "new")
    os.utime(old / "export.json", (1_000_000, 1_000_000))
    (old / "notes.txt").write_text("the folder's time moves; the export did not change")
    assert [m.folder.name for m in list_exports(project.exports_dir)] == ["new", "old"]


def test_the_readme_in_the_export_folder_names_absolute_paths(tmp_path, monkeypatch):
    # Exported with `-p .`, the folder is relative to where the export ran, not to the README.
    monkeypatch.chdir(tmp_path)
    write_export(tmp_path / "exports" / "my model")
    readme = run_readme(read_manifest(tmp_path.relative_to(tmp_path) / "exports" / "my model"))
    assert f"llama-cli -m '{tmp_path}/exports/my model/facts-q8_0.gguf' --jinja" in readme


def test_the_model_card_parses_and_holds_counts_not_samples(tmp_path, project):
    from huggingface_hub import ModelCard

    from export_helpers import make_run
    from tunewiz.checkpoints import rank_checkpoints, read_run_config
    from tunewiz.dataset import Pair
    from tunewiz.export.card import model_card

    run = make_run(project)
    report = rank_checkpoints(run)
    spec = read_run_config(run)
    manifest = read_manifest(write_export(tmp_path / "facts"))
    pairs = [Pair(question="What is the secret code of Zorbl?", answer="7431.", status="accepted",
                  source="qa.csv:2"),
             Pair(question="And its colour?", answer="Teal.", source="chats.jsonl:1",
                  history=[{"role": "user", "content": "Tell me about Zorbl."}, {"role": "assistant", "content": "A lab."}])]
    text = model_card("facts", manifest, spec, report, report.best, pairs, tmp_path / "no-base")
    card = ModelCard(text)
    assert card.data.base_model == "smollm2-135m" and card.data.library_name == "transformers"
    assert {"tunewiz", "lora", "gguf"} <= set(card.data.tags)
    assert "2 training samples (1 question/answer pairs, 1 conversations); 1 reviewed and accepted" in card.text
    assert "also trained in other words" not in card.text
    spec.plan = dict(spec.plan or {}, train_rewordings=1)  # a run that trained a rewording beside its pair
    rewordings = ModelCard(model_card("facts", manifest, spec, report, report.best, pairs, tmp_path / "no-base"))
    assert "- 1 of their questions also trained in other words (never asked by the recall check)" in rewordings.text
    assert f"Step {report.best.step} of run `{run.id}`: " in card.text and "validation loss: 1.2000" in card.text
    assert "facts-q8_0.gguf" in card.text and "ollama create facts" in card.text
    assert "Zorbl" not in text and "7431" not in text  # counts, never the user's data


def test_the_commands_are_printed_on_quit(tmp_path):
    from tunewiz.tui.app import last_export_commands

    assert last_export_commands(tmp_path / "exports") == ""
    write_export(tmp_path / "exports" / "facts")
    text = last_export_commands(tmp_path / "exports")
    assert text.startswith("Run the newest export") and "facts-q8_0.gguf --jinja" in text
