"""`tunewiz push` with huggingface_hub's real client against a stand-in of the Hub's HTTP API on loopback
(fake_hub.py). The command runs in a child, as a user runs it: huggingface_hub reads HF_ENDPOINT when imported."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from fake_hub import TOKEN, FakeHub

from tunewiz.export import export_model
from tunewiz.project import Project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trained_project):
    project, _run = trained_project
    project = Project.load(project.root)
    export_model(project, types=["q8_0"], name="pushme", smoke=False, force=True)
    return project


def push(project, *args, token=TOKEN, endpoint="", home=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {"HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "tunewiz", "push", "-p", str(project.root), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_push_uploads_the_adapter_and_card_privately_then_gguf_without_sending_twice(exported, tmp_path):
    project = exported
    with FakeHub() as hub:
        done = push(project, "facts-lora", "--export", "pushme", endpoint=hub.url, home=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "Pushed" in done.stdout and "tester/facts-lora (private)" in done.stdout
        repo = hub.repos["tester/facts-lora"]
        assert repo["private"] is True
        files = repo["files"]
        assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "tokenizer.json"} <= set(files)
        assert not any(name.endswith(".gguf") or name.startswith("merged/") for name in files)
        manifest = project.exports_dir / "pushme"
        run = next(project.runs_dir.iterdir())
        step = json.loads((manifest / "export.json").read_text())["step"]
        adapter = (run / "checkpoints" / f"checkpoint-{step}" / "adapter_model.safetensors").read_bytes()
        assert files["adapter_model.safetensors"] == adapter
        assert hashlib.sha256(adapter).hexdigest() in hub.lfs  # big files went through LFS
        assert files["README.md"] == (manifest / "README.md").read_bytes()
        assert not (project.exports_dir / ".push-pushme").exists()  # the staging links are gone

        puts_before = sum(1 for method, _ in hub.requests if method == "PUT")
        done = push(project, "tester/facts-lora", "--export", "pushme", "--gguf", endpoint=hub.url, home=tmp_path)
        assert done.returncode == 0, done.stderr
        files = hub.repos["tester/facts-lora"]["files"]
        assert {"pushme-q8_0.gguf", "pushme-lora-f16.gguf", "Modelfile"} <= set(files)
        assert files["pushme-q8_0.gguf"] == (manifest / "pushme-q8_0.gguf").read_bytes()
        new_puts = [path for method, path in hub.requests if method == "PUT"][puts_before:]
        assert len(new_puts) == 2  # the two GGUF files; the adapter the hub already had was not sent again


def test_push_errors_name_the_token_and_the_network(exported, tmp_path):
    project = exported
    done = push(project, "x", token="", endpoint="http://127.0.0.1:9", home=tmp_path)
    assert done.returncode == 2 and "no Hugging Face token: set HF_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    done = push(project, "tester/x", endpoint="http://127.0.0.1:9", home=tmp_path)
    assert done.returncode == 2 and "cannot reach" in done.stderr and "Traceback" not in done.stderr
    with FakeHub() as hub:
        done = push(project, "tester/x", token="hf_wrong", endpoint=hub.url, home=tmp_path)
        assert done.returncode == 2 and "refused" in done.stderr and "hf auth login" in done.stderr
        assert not hub.repos
