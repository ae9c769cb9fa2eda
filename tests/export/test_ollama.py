"""`ollama create` from an export's Modelfile and a one-question check, against a stand-in `ollama` on PATH
(the real one needs its server). The export folder here is written the way export_model writes it."""

from __future__ import annotations

import json
import shutil

import pytest
from ollama_helpers import install_fake_ollama, ollama_calls

from tunewiz.errors import TunewizError
from tunewiz.export.modelfile import render_modelfile
from tunewiz.export.ollama import best_gguf, create_ollama_model
from tunewiz.exports import read_manifest


def export_folder(root, types=("q4_k_m", "f16")):
    folder = root / "exports" / "facts"
    folder.mkdir(parents=True)
    ggufs = {t: f"facts-{t}.gguf" for t in types}
    for name in ggufs.values():
        (folder / name).write_bytes(b"GGUF" + bytes(16))
    (folder / "Modelfile").write_text(render_modelfile(ggufs[types[0]], "chatml", "Be brief."))
    (folder / "export.json").write_text(json.dumps({"gguf": ggufs, "ollama_name": "facts", "template": "chatml"}))
    return read_manifest(folder)


def test_creates_from_the_best_quality_gguf_and_asks_one_question(tmp_path, monkeypatch):
    log = install_fake_ollama(monkeypatch, tmp_path, answer="The capital of Zorbania is Quillport.")
    manifest = export_folder(tmp_path)
    assert best_gguf(manifest) == "f16"  # the main (first) GGUF is q4_k_m; f16 is more faithful
    lines = []
    model = create_ollama_model(manifest, "What is the capital of Zorbania?", on_progress=lines.append)
    assert model.name == "facts" and model.gguf == "facts-f16.gguf"
    assert "Quillport" in model.answer
    calls = ollama_calls(log)
    assert calls == [["create", "facts", "-f", "Modelfile.f16"], ["run", "facts", "What is the capital of Zorbania?"]]
    # The Modelfile for f16 is the export's own with another FROM: template, stops, system prompt kept.
    own = (manifest.folder / "Modelfile").read_text()
    other = (manifest.folder / "Modelfile.f16").read_text()
    assert other.splitlines()[0] == "FROM ./facts-f16.gguf"
    assert other.splitlines()[1:] == own.splitlines()[1:]
    assert any("Creating the Ollama model facts" in line for line in lines)


def test_the_main_gguf_uses_the_exports_own_modelfile(tmp_path, monkeypatch):
    log = install_fake_ollama(monkeypatch, tmp_path)
    manifest = export_folder(tmp_path)
    create_ollama_model(manifest, "Hi?", gguf_type="q4_k_m")
    assert ollama_calls(log)[0] == ["create", "facts", "-f", "Modelfile"]
    assert not (manifest.folder / "Modelfile.q4_k_m").exists()


def test_clear_errors_without_ollama_its_server_or_the_type(tmp_path, monkeypatch):
    manifest = export_folder(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(TunewizError, match="not on PATH.*ollama.com"):
        create_ollama_model(manifest, "Hi?")
    install_fake_ollama(monkeypatch, tmp_path, fail="connect")
    with pytest.raises(TunewizError, match="ollama create failed.*could not connect.*ollama serve"):
        create_ollama_model(manifest, "Hi?")
    install_fake_ollama(monkeypatch, tmp_path)
    with pytest.raises(TunewizError, match="no q8_0 GGUF.*q4_k_m, f16"):
        create_ollama_model(manifest, "Hi?", gguf_type="q8_0")
    (manifest.folder / "Modelfile").unlink()
    with pytest.raises(TunewizError, match="has no Modelfile"):
        create_ollama_model(read_manifest(manifest.folder), "Hi?")


def test_a_modelfile_ollama_would_refuse_is_an_error_naming_it(tmp_path, monkeypatch):
    """The stand-in checks what it is given as Ollama does: a FROM that names no GGUF fails."""
    install_fake_ollama(monkeypatch, tmp_path)
    manifest = export_folder(tmp_path, types=("q8_0",))
    (manifest.folder / "facts-q8_0.gguf").unlink()
    with pytest.raises(TunewizError, match="invalid model reference: FROM ./facts-q8_0.gguf"):
        create_ollama_model(manifest, "Hi?")
    assert shutil.which("ollama")  # it was the stand-in that refused
