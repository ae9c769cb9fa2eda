"""Models the user already has on this machine, for generating pairs with something better than SmolLM2.

Two kinds are found:
- servers on their usual local ports (Ollama, LM Studio, llama.cpp's llama-server, vLLM: the
  presets' base URLs), asked for `/models` with a short timeout;
- GGUF files in the usual folders: the Hugging Face cache, LM Studio's models folder, and Ollama's
  blobs (named by their manifests, since the blobs themselves are named by digest).

A GGUF file is read by llama.cpp itself (`llama_cpp.Llama(vocab_only=True)`: its metadata, no weights)
and kept only when it is a chat model that file can serve: embedding models (a pooling type, an
encoder architecture), multimodal projectors and later shards of a split model are skipped, each
with its reason. `propose` picks one for the machine's memory.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SERVER_PROVIDERS = ("ollama", "lmstudio", "llamacpp", "vllm")
PROBE_TIMEOUT_S = 0.5
ENCODER_ARCHITECTURES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder",
                                   "modern-bert", "neo-bert", "clip", "wavtokenizer-dec"})
"""Architectures that embed or encode rather than chat (clip: a multimodal projector)."""
EMBEDDING_NAME = re.compile(r"embed|bge-|e5-|minilm|rerank", re.IGNORECASE)
SHARD_NAME = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
MAX_PROPOSED_PARAMS_B = 8.0
"""Larger models generate too slowly on most machines to be proposed (they are still listed)."""
MEMORY_HEADROOM = 1.3
"""A GGUF file needs about its size in memory, plus its context: proposed only under available / this."""


@dataclass(frozen=True)
class LocalModel:
    provider: str
    """The preset that reaches it: a server's name, or "embedded" for a GGUF file."""
    model: str
    """The server's model id, or the GGUF file's path."""
    where: str
    """Where it was found: the server's base URL, or the folder kind (Hugging Face cache, ...)."""
    base_url: str = ""
    params_b: float | None = None
    size_bytes: int = 0
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or Path(self.model).name


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


# ---------------------------------------------------------------- servers

def find_servers(base_urls: dict[str, str] | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> list[LocalModel]:
    """The chat models of the local servers that answer (`base_urls`: provider -> URL; default the presets')."""
    from tunewiz.generators.providers import PRESETS

    urls = base_urls if base_urls is not None else {p: PRESETS[p].base_url for p in SERVER_PROVIDERS}
    with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
        answers = list(pool.map(lambda item: (item[0], item[1], _models_at(item[1], timeout_s)), urls.items()))
    return [LocalModel(provider, model, base_url, base_url=base_url)
            for provider, base_url, models in answers for model in models if not EMBEDDING_NAME.search(model)]


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Probes of this machine's ports go straight there: through http_proxy (set on many company machines)
a server on localhost is asked of the proxy, which never finds it."""


def _models_at(base_url: str, timeout_s: float) -> list[str]:
    """The model ids a server lists at /models; [] when nothing answers there (or not as an OpenAI API)."""
    try:
        with _DIRECT.open(base_url.rstrip("/") + "/models", timeout=timeout_s) as response:
            listing = json.loads(response.read(1 << 20))
    except (OSError, ValueError):
        return []
    data = listing.get("data") if isinstance(listing, dict) else None
    return [m["id"] for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]


# ---------------------------------------------------------------- GGUF files

def gguf_folders(home: Path | None = None, env: dict[str, str] | None = None) -> list[tuple[str, Path]]:
    """(kind, folder) of the places GGUF files usually are, whether or not they exist."""
    home = home or Path.home()
    env = os.environ if env is None else env
    hub = Path(env["HF_HUB_CACHE"]) if env.get("HF_HUB_CACHE") else (
        Path(env["HF_HOME"]) / "hub" if env.get("HF_HOME") else home / ".cache" / "huggingface" / "hub")
    return [("Hugging Face cache", hub),
            ("LM Studio", home / ".lmstudio" / "models"),
            ("LM Studio", home / ".cache" / "lm-studio" / "models"),
            ("Ollama", Path(env["OLLAMA_MODELS"]) if env.get("OLLAMA_MODELS") else home / ".ollama" / "models")]


def gguf_candidates(folders: list[tuple[str, Path]]) -> list[tuple[str, Path, str]]:
    """(kind, file, name) of every GGUF file in the folders; Ollama's blobs named by their manifests."""
    found: list[tuple[str, Path, str]] = []
    seen: set[Path] = set()
    for kind, folder in folders:
        if not folder.is_dir():
            continue
        files = ollama_models(folder) if kind == "Ollama" else [(p, "") for p in sorted(folder.rglob("*.gguf"))]
        for path, name in files:
            real = path.resolve()
            if real not in seen and real.is_file():
                seen.add(real)
                found.append((kind, path, name))
    return found


def ollama_models(models_dir: Path) -> list[tuple[Path, str]]:
    """(blob, "model:tag") for each Ollama manifest's model layer (the GGUF file)."""
    out: list[tuple[Path, str]] = []
    manifests = models_dir / "manifests"
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
        except (OSError, ValueError, AttributeError):
            continue
        for layer in layers:
            if isinstance(layer, dict) and layer.get("mediaType") == "application/vnd.ollama.image.model":
                digest = str(layer.get("digest", "")).replace(":", "-")
                out.append((models_dir / "blobs" / digest, f"{manifest.parent.name}:{manifest.name}"))
    return out


LATER_SHARD = "a later shard of a split model (the first shard loads them all)"


def is_later_shard(path: Path, metadata: dict[str, str] | None = None) -> bool:
    """Shard 2 or later of a split GGUF, by llama.cpp's file naming or its split.no metadata."""
    shard = SHARD_NAME.search(path.name)
    return bool(shard and int(shard.group(1)) > 1) or (metadata or {}).get("split.no", "0") not in ("", "0")


def not_a_chat_model(path: Path, metadata: dict[str, str]) -> str | None:
    """Why a GGUF file (with llama.cpp's reading of its metadata) is not a chat model to propose, or None."""
    arch = metadata.get("general.architecture", "")
    if is_later_shard(path, metadata):
        return LATER_SHARD
    if metadata.get("general.type") == "mmproj" or arch == "clip":
        return "a multimodal projector, not a model"
    if arch in ENCODER_ARCHITECTURES or f"{arch}.pooling_type" in metadata:
        return f"an embedding model ({arch})"
    if not metadata.get("tokenizer.chat_template"):
        return "no chat template (a base model, not an instruct one)"
    return None


def read_gguf_metadata(path: Path) -> dict[str, str]:
    """llama.cpp's reading of a GGUF file's metadata (the vocabulary is loaded, no weights)."""
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):  # llama.cpp's loader talks on stderr even when not verbose
        model = Llama(str(path), vocab_only=True, verbose=False)
    try:
        return dict(model.metadata)
    finally:
        model.close()


def params_from_label(label: str) -> float | None:
    """Billions of parameters from a size label ("135M", "3B", "8x7B"), or None."""
    match = re.fullmatch(r"(?:(\d+)x)?(\d+(?:\.\d+)?)([KMBT])", label.strip(), re.IGNORECASE)
    if not match:
        return None
    experts, value, unit = match.groups()
    scale = {"K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}[unit.upper()]
    return round(float(value) * scale * (int(experts) if experts else 1), 3)


def find_gguf_files(folders: list[tuple[str, Path]] | None = None,
                    read=read_gguf_metadata) -> tuple[list[LocalModel], list[Skipped]]:
    """Chat GGUF files in the usual folders, and the files skipped with their reasons."""
    models: list[LocalModel] = []
    skipped: list[Skipped] = []
    for kind, path, name in gguf_candidates(gguf_folders() if folders is None else folders):
        if is_later_shard(path):  # not even opened: llama.cpp loads it through the first shard
            skipped.append(Skipped(path, LATER_SHARD))
            continue
        try:
            metadata = read(path)
        except Exception as exc:  # llama.cpp refuses the file: it cannot serve it either
            skipped.append(Skipped(path, f"llama.cpp cannot load it ({str(exc).splitlines()[0][:120]})"))
            continue
        reason = not_a_chat_model(path, metadata)
        if reason:
            skipped.append(Skipped(path, reason))
            continue
        models.append(LocalModel("embedded", str(path), kind, params_b=params_from_label(
            metadata.get("general.size_label", "")), size_bytes=path.stat().st_size,
            name=name))
    return models, skipped


# ---------------------------------------------------------------- the proposal

def propose(models: list[LocalModel], available_bytes: int) -> LocalModel | None:
    """The model to generate with: a running server's first (already set up and serving), else the
    largest chat GGUF of at most MAX_PROPOSED_PARAMS_B that fits the memory; None: the shipped SmolLM2."""
    servers = [m for m in models if m.base_url]
    if servers:
        return servers[0]
    fitting = [m for m in models if m.size_bytes * MEMORY_HEADROOM <= available_bytes
               and (m.params_b is None or m.params_b <= MAX_PROPOSED_PARAMS_B)]
    if not fitting:
        return None
    return max(fitting, key=lambda m: (m.params_b or 0.0, m.size_bytes))


def settings_for(model: LocalModel) -> dict[str, str]:
    """The project settings that make `model` the generator."""
    if model.base_url:
        return {"generator.provider": model.provider, "generator.model": model.model,
                "generator.base_url": model.base_url}
    return {"generator.provider": "embedded", "generator.embedded_gguf": model.model}


def use_model(project, model: LocalModel) -> dict[str, str]:
    """Make `model` the project's generator and save the project: the settings written."""
    settings = settings_for(model)
    for key, value in settings.items():
        project.set(key, value)
    project.save()
    return settings


def find_local_models(base_urls: dict[str, str] | None = None, folders: list[tuple[str, Path]] | None = None,
                      read=read_gguf_metadata) -> tuple[list[LocalModel], list[Skipped]]:
    """Servers' models first (in the presets' order), then GGUF files (by folder, then path): numbered
    in this order by `tunewiz providers`, and the same order again for `--use N`."""
    files, skipped = find_gguf_files(folders, read)
    return find_servers(base_urls) + files, skipped


# ---------------------------------------------------------------- a recommended model from the hub

@dataclass(frozen=True)
class HubModel:
    repo: str
    filename: str
    params_b: float
    size_bytes: int
    """About the file's size, to say before downloading and to choose by memory."""


RECOMMENDED = (
    HubModel("Qwen/Qwen2.5-3B-Instruct-GGUF", "qwen2.5-3b-instruct-q4_k_m.gguf", 3.1, 2_100_000_000),
    HubModel("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf", 1.5, 1_120_000_000),
)
"""Instruct GGUFs that follow the generation prompts, largest first (Apache-2.0, no sign-in needed)."""


def recommended_download(available_bytes: int) -> HubModel | None:
    """The largest recommended file that fits the memory as a proposed local one must; None: none fits."""
    return next((m for m in RECOMMENDED if m.size_bytes * MEMORY_HEADROOM <= available_bytes), None)


def download_to_propose(available_bytes: int) -> HubModel:
    """The recommended download for this much memory; TunewizError when none fits."""
    from tunewiz.errors import TunewizError

    wanted = recommended_download(available_bytes)
    if wanted is None:
        raise TunewizError(f"no recommended model fits the {available_bytes / 1e9:.1f} GB of memory available; "
                           "the embedded provider keeps the shipped SmolLM2")
    return wanted


def downloaded(model: HubModel, path: Path) -> LocalModel:
    """The local model a finished download is, to `use_model`."""
    return LocalModel("embedded", str(path), "Hugging Face cache", params_b=model.params_b,
                      size_bytes=path.stat().st_size, name=model.filename)


def _progress_bars(progress: Callable[[int, int], None]):
    """A tqdm class for the hub library that reports (bytes done, bytes in all) to `progress` instead of
    drawing on the terminal (the wizard shows it in its own line). A Xet-backed file makes two bars
    (transfer and reconstruction) of the same size: the figure reported is the furthest of them, so it
    never goes back. `progress` may raise to stop the download."""
    from tqdm.auto import tqdm

    furthest = [0]

    class Reported(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # nothing drawn (a disabled bar counts nothing either: counted here)
            self.done = int(kwargs.get("initial") or 0)  # a resumed download starts where it stopped
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            self.done += int(n or 0)
            if self.done > furthest[0]:
                furthest[0] = self.done
                progress(self.done, int(self.total or 0))

    return Reported


def download(model: HubModel, endpoint: str | None = None, cache_dir: Path | None = None,
             progress: Callable[[int, int], None] | None = None) -> Path:
    """Download `model` into the Hugging Face cache (where discovery finds it again), with the hub
    library's progress bar (or `progress(bytes done, bytes in all)` instead), and check it against the
    SHA-256 the hub publishes for the file.

    A file that does not match is deleted. No network, or a hub that refuses: TunewizError, and the
    embedded provider keeps serving the shipped SmolLM2."""
    import hashlib

    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    from tunewiz.errors import TunewizError

    # Read here, not when the hub library was imported: a mirror or a cache set later still counts.
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    if cache_dir is None and os.environ.get("HF_HUB_CACHE"):
        cache_dir = Path(os.environ["HF_HUB_CACHE"])
    where = endpoint or "the Hugging Face hub"
    try:
        published = get_hf_file_metadata(hf_hub_url(model.repo, model.filename, endpoint=endpoint),
                                         endpoint=endpoint)
        bars = {} if progress is None else {"tqdm_class": _progress_bars(progress)}
        path = Path(hf_hub_download(model.repo, model.filename, endpoint=endpoint, cache_dir=cache_dir, **bars))
    except Exception as exc:  # offline, a proxy, a hub error: the library raises many kinds
        raise TunewizError(f"could not download {model.repo}/{model.filename} from {where} "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                           "the embedded provider keeps the shipped SmolLM2") from None
    expected = (published.etag or "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise TunewizError(f"{where} published no SHA-256 for {model.filename} (etag {published.etag!r}): "
                           f"not used; {path} can be checked by hand")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        for stale in {path, path.resolve()}:
            stale.unlink(missing_ok=True)
        raise TunewizError(f"{model.filename} from {where} does not match its published SHA-256 "
                           f"({digest.hexdigest()[:12]}... against {expected[:12]}...): deleted; try again")
    return path
