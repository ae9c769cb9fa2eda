"""Finding the models a user already has: servers on loopback, GGUF files in the usual folders.

The servers are a real HTTP server on loopback listing models as Ollama would; the GGUF files are the
real SmolLM2 file (read by llama.cpp) laid out as the Hugging Face cache, LM Studio and Ollama keep
them. Metadata of files this machine has no copy of (embedding models, projectors, shards) is given
as llama.cpp reports it.
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tunewiz.cli import main
from tunewiz.generators.discovery import (LocalModel, find_gguf_files, find_servers, gguf_folders,
                                          not_a_chat_model, params_from_label, propose, settings_for)
from tunewiz.models import smollm2_gguf_path
from tunewiz.project import Project, create_project

class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """A real HTTP server on a free loopback port, in a thread: (server, http://127.0.0.1:PORT)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


CHAT = {"general.architecture": "llama", "general.size_label": "3B", "tokenizer.chat_template": "{{ x }}"}


@pytest.fixture
def model_server():
    class Handler(QuietHandler):
        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": "nomic-embed-text:latest"},
                                                          {"id": "qwen2.5:3b"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server, url = serve(Handler)
    yield url + "/v1"
    server.shutdown()


def test_a_local_server_lists_its_chat_models_and_a_closed_port_nothing(model_server, tmp_path, monkeypatch):
    closed = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
    # A proxy for the machine's http traffic (company machines): asked through it, localhost was not found.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "")
    found = find_servers({"ollama": model_server, "lmstudio": closed})
    assert found == [LocalModel("ollama", "qwen2.5:3b", model_server, base_url=model_server)]  # no embedder
    assert settings_for(found[0]) == {"generator.provider": "ollama", "generator.model": "qwen2.5:3b",
                                      "generator.base_url": model_server}


def _layout(home: Path) -> dict[str, Path]:
    """The SmolLM2 GGUF where the Hugging Face cache, LM Studio and Ollama keep their files."""
    gguf = smollm2_gguf_path()
    hub = home / ".cache" / "huggingface" / "hub" / "models--x--smol" / "snapshots" / "abc"
    hub.mkdir(parents=True)
    (hub / "smol-q4.gguf").symlink_to(gguf)
    (hub / "smol-q4-00002-of-00002.gguf").write_bytes(b"GGUF")  # a later shard: never opened
    studio = home / ".lmstudio" / "models" / "someone" / "smol"
    studio.mkdir(parents=True)
    (studio / "broken.gguf").write_bytes(b"not a gguf at all")
    ollama = home / ".ollama" / "models"
    digest = "sha256:" + "ab" * 32
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "cd" * 32},
        {"mediaType": "application/vnd.ollama.image.model", "digest": digest}]}))
    (ollama / "blobs").mkdir()
    blob = ollama / "blobs" / digest.replace(":", "-")
    shutil.copyfile(gguf, blob)  # a file of its own, as Ollama keeps it (a link would be the same file)
    return {"hub": hub / "smol-q4.gguf", "blob": blob}


def test_gguf_files_in_the_usual_folders_are_read_by_llama_cpp(tmp_path):
    paths = _layout(tmp_path)
    models, skipped = find_gguf_files(gguf_folders(home=tmp_path, env={}))
    assert [(m.where, Path(m.model), m.params_b) for m in models] == [
        ("Hugging Face cache", paths["hub"], 0.135), ("Ollama", paths["blob"], 0.135)]
    assert models[1].label == "smollm2:135m"  # the blob is named by its manifest
    reasons = {p.name: r for p, r in ((s.path, s.reason) for s in skipped)}
    assert reasons["smol-q4-00002-of-00002.gguf"].startswith("a later shard")
    assert reasons["broken.gguf"].startswith("llama.cpp cannot load it")
    assert settings_for(models[0]) == {"generator.provider": "embedded", "generator.embedded_gguf": str(paths["hub"])}


@pytest.mark.parametrize("metadata, reason", [
    (CHAT, None),
    ({**CHAT, "general.architecture": "nomic-bert"}, "an embedding model"),
    ({**CHAT, "general.architecture": "qwen3", "qwen3.pooling_type": "1"}, "an embedding model"),
    ({**CHAT, "general.architecture": "clip", "general.type": "mmproj"}, "a multimodal projector"),
    ({**CHAT, "split.no": "1", "split.count": "3"}, "a later shard"),
    ({k: v for k, v in CHAT.items() if k != "tokenizer.chat_template"}, "no chat template"),
])
def test_only_chat_models_are_kept(metadata, reason):
    found = not_a_chat_model(Path("model.gguf"), metadata)
    assert (found is None) if reason is None else found.startswith(reason)


def test_size_labels_and_the_proposal():
    assert [params_from_label(x) for x in ("135M", "3B", "8x7B", "1.5B", "big")] == [0.135, 3.0, 56.0, 1.5, None]
    gb = 10**9
    small = LocalModel("embedded", "/m/small.gguf", "LM Studio", params_b=1.5, size_bytes=1 * gb)
    mid = LocalModel("embedded", "/m/mid.gguf", "LM Studio", params_b=4.0, size_bytes=3 * gb)
    huge = LocalModel("embedded", "/m/huge.gguf", "LM Studio", params_b=70.0, size_bytes=40 * gb)
    assert propose([small, mid, huge], 100 * gb) is mid  # the largest of at most 8B
    assert propose([small, mid, huge], 2 * gb) is small  # what fits the memory
    assert propose([huge], 100 * gb) is None  # too slow to propose: the shipped SmolLM2 then
    server = LocalModel("ollama", "qwen2.5:3b", "http://x/v1", base_url="http://x/v1")
    assert propose([small, server], 100 * gb) is server  # a running server is what the user set up


def test_providers_lists_what_it_found_and_use_records_it(tmp_path, monkeypatch, capsys):
    paths = _layout(tmp_path / "home")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS"):
        monkeypatch.delenv(name, raising=False)
    project = create_project(tmp_path / "p")
    before = project.file.read_text()
    assert main(["providers", "-p", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "Found on this machine:" in out and "smollm2:135m" in out
    assert "skipped" in out and "a later shard" in out
    assert "Proposed: 1 (embedded" in out and f"tunewiz providers -p {project.root} --use 1" in out  # from outside it
    assert project.file.read_text() == before  # listing changes nothing
    assert main(["providers", "-p", str(project.root), "--use", "2"]) == 0
    g = Project.load(project.root).config.generator
    assert (g.provider, Path(g.embedded_gguf)) == ("embedded", paths["blob"])
    assert main(["providers", "-p", str(project.root), "--use", "7"]) == 2
    assert "there is no local model 7" in capsys.readouterr().err




@pytest.mark.parametrize("tampered", [False, True])
def test_a_download_is_checked_against_the_published_sha256(tmp_path, tampered, hub_file):
    import hashlib

    from tunewiz.errors import TunewizError
    from tunewiz.generators.discovery import HubModel, download

    body = b"GGUF" + bytes(range(256)) * 64
    published = hashlib.sha256(body + (b"x" if tampered else b"")).hexdigest()
    endpoint = hub_file(body, published)
    model = HubModel("someone/Tiny-Instruct-GGUF", "tiny-q4_k_m.gguf", 0.1, len(body))
    if tampered:
        with pytest.raises(TunewizError, match="does not match its published SHA-256"):
            download(model, endpoint=endpoint, cache_dir=tmp_path / "hub")
        left = [p for p in (tmp_path / "hub").rglob("*") if p.name.endswith(".gguf") or "blobs" in p.parts]
        assert not [p for p in left if p.is_file() or p.is_symlink()]  # neither the file nor its blob
    else:
        seen = []
        path = download(model, endpoint=endpoint, cache_dir=tmp_path / "hub", progress=lambda *done: seen.append(done))
        assert path.read_bytes() == body and path.name == "tiny-q4_k_m.gguf"
        assert path.is_relative_to(tmp_path / "hub")  # in the hub's cache layout, found by discovery
        assert seen and seen[-1] == (len(body), len(body))  # the wizard's progress: bytes done, of all


def test_the_progress_of_two_bars_over_one_file_never_goes_back():
    # A Xet-backed file: the hub library makes a transfer bar and a reconstruction bar of the same size.
    from tunewiz.generators.discovery import _progress_bars

    seen = []
    bars = _progress_bars(lambda done, total: seen.append(done))
    transfer, rebuild = bars(total=1000), bars(total=1000)
    for bar, n in ((transfer, 300), (rebuild, 100), (transfer, 300), (rebuild, 400), (transfer, 400), (rebuild, 500)):
        bar.update(n)
    assert seen == sorted(seen) and seen[-1] == 1000


def test_offline_the_download_says_so_and_nothing_changes(tmp_path):
    from tunewiz.errors import TunewizError
    from tunewiz.generators.discovery import RECOMMENDED, download, recommended_download

    assert recommended_download(100 * 10**9) is RECOMMENDED[0]
    assert recommended_download(1_600_000_000) is RECOMMENDED[1]  # a smaller machine: the 1.5B file
    assert recommended_download(10**9) is None
    with pytest.raises(TunewizError, match="could not download .* keeps the shipped SmolLM2"):
        download(RECOMMENDED[1], endpoint="http://127.0.0.1:9", cache_dir=tmp_path / "hub")
    assert not list((tmp_path / "hub").rglob("*.gguf"))


def test_providers_download_fetches_checks_and_records_it(tmp_path, monkeypatch, capsys, hub_file):
    import hashlib

    body = smollm2_gguf_path().read_bytes()  # a real GGUF, so that discovery reads it afterwards
    endpoint = hub_file(body, hashlib.sha256(body).hexdigest())
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    project = create_project(tmp_path / "p")
    assert main(["providers", "-p", str(project.root), "--download"]) == 0
    out = capsys.readouterr().out
    assert "SHA-256 matches" in out
    g = Project.load(project.root).config.generator
    assert g.provider == "embedded" and Path(g.embedded_gguf).read_bytes() == body
    assert main(["providers", "-p", str(project.root)]) == 0  # and it is found where it was put
    assert "Hugging Face cache" in capsys.readouterr().out
