"""The base model: from what the user named to a plain Hugging Face folder that training loads.

A base model can be named four ways: the alias 'smollm2-135m', a Hugging Face model
folder, a .gguf file (or a folder holding .gguf files), or a hub id. Training always
starts from a plain HF folder (config.json + safetensors + tokenizer):

- an HF folder is used as it is;
- a GGUF file is dequantized once by transformers and written as a plain HF folder
  into the cache (~/.cache/tunewiz/base/<name>-<hash>/, TUNEWIZ_CACHE overrides),
  because a model loaded from GGUF refuses save_pretrained and the export step
  merges the adapter into that same folder's weights;
- a hub id is downloaded with huggingface_hub (needs a network).

Nothing here imports torch or transformers at module level.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from tunewiz.errors import TunewizError
from tunewiz.models import SMOLLM2_ALIAS, smollm2_gguf_path

READY_MARKER = ".tunewiz-base-ready"
"""Written last into a converted folder; a folder without it is a half-written conversion."""

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def cache_dir() -> Path:
    """Where converted base models live; TUNEWIZ_CACHE overrides ~/.cache/tunewiz."""
    root = os.environ.get("TUNEWIZ_CACHE") or Path.home() / ".cache" / "tunewiz"
    return Path(root) / "base"


def is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def locate_gguf(spec: str, gguf_file: str = "", relative_to: Path | None = None) -> Path | None:
    """The GGUF file a spec names, or None when it names no GGUF (an HF folder or a hub id)."""
    if spec == SMOLLM2_ALIAS:
        return smollm2_gguf_path()
    path = _as_path(spec, relative_to)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if path.is_dir() and not is_hf_folder(path):
        found = sorted(path.glob("*.gguf"))
        if gguf_file:
            chosen = path / gguf_file
            if not chosen.is_file():
                raise TunewizError(f"base_model.gguf_file: {chosen} does not exist "
                                   f"(GGUF files there: {', '.join(p.name for p in found) or 'none'})")
            return chosen
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise TunewizError(f"base_model.model: {path} holds several GGUF files "
                               f"({', '.join(p.name for p in found)}); name one in base_model.gguf_file")
    return None


def resolve_base(spec: str, gguf_file: str = "", relative_to: Path | None = None,
                 progress=print) -> Path:
    """The plain HF folder to train from, converting a GGUF into the cache the first time."""
    if not spec:
        raise TunewizError("base_model.model is empty: name a model folder, a .gguf file, a hub id "
                           f"or '{SMOLLM2_ALIAS}'")
    gguf = locate_gguf(spec, gguf_file, relative_to)
    if gguf is not None:
        return convert_gguf(gguf, progress=progress)
    path = _as_path(spec, relative_to)
    if path.is_dir():
        if not is_hf_folder(path):
            raise TunewizError(f"base_model.model: {path} is neither a Hugging Face model folder "
                               "(no config.json) nor a folder with a .gguf file")
        return path
    if path.exists():
        raise TunewizError(f"base_model.model: {path} is not a .gguf file or a model folder")
    if HUB_ID.match(spec):
        return _download(spec, progress)
    raise TunewizError(f"base_model.model: {spec!r} does not exist (not a folder, not a .gguf file, "
                       "not a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct')")


def _as_path(spec: str, relative_to: Path | None) -> Path:
    path = Path(spec).expanduser()
    if not path.is_absolute() and relative_to is not None and (relative_to / path).exists():
        return relative_to / path
    return path


def _download(repo_id: str, progress) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - installed with transformers
        raise TunewizError("downloading from the hub needs huggingface_hub (pip install huggingface_hub)")
    progress(f"Downloading {repo_id} from the Hugging Face hub...")
    try:
        folder = snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model",
                                                            "*.txt", "*.jinja", "tokenizer*"])
    except Exception as exc:  # offline, unknown repo, gated model: all need the same message
        raise TunewizError(f"base_model.model: could not download {repo_id!r} from the hub "
                           f"({type(exc).__name__}: {exc}); check the name and the network, or "
                           "point base_model.model at a local folder or .gguf file") from None
    return Path(folder)


DIGESTS_FILE = "gguf-digests.json"
"""In the cache: the content digest of each GGUF file seen, by path, size, time and inode."""


def converted_path(gguf: Path) -> Path:
    """The cache folder of a GGUF's conversion, named by the file's whole content.

    Not by its path or time: the same model installed in another environment (a new venv, a fresh
    clone's) reuses the conversion instead of adding another copy of the weights to the cache. Not by
    samples of it either: a GGUF whose metadata (a stop token) or some weights were changed in place,
    size unchanged, must not be handed the old conversion."""
    return cache_dir() / f"{gguf.stem}-{content_digest(gguf)[:16]}"


def content_digest(path: Path) -> str:
    """SHA-256 of a file, computed once per version of it (a multi-GB file takes seconds) and
    remembered in the cache."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
    index_path = cache_dir() / DIGESTS_FILE
    known = _read_digests(index_path)
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(8 << 20), b""):
            digest.update(block)
    # Read again before writing (another process may have added its own), forget this path's older
    # versions, and replace the file whole; a cache that cannot be written only costs a hash next time.
    known = {k: v for k, v in _read_digests(index_path).items()
             if not k.startswith(f"{path.resolve()}|")} | {key: digest.hexdigest()}
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(f".{index_path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=0) + "\n", encoding="utf-8")
        os.replace(tmp, index_path)
    except OSError:
        pass
    return digest.hexdigest()


def _read_digests(index_path: Path) -> dict[str, str]:
    try:
        known = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in known.items() if isinstance(v, str)} if isinstance(known, dict) else {}


def convert_gguf(gguf: Path, progress=print) -> Path:
    """Dequantize a GGUF into a plain HF folder in the cache (once; later calls reuse it).

    Concurrent callers wait for each other through a lock file, and the folder is
    written under a temporary name and renamed, so a crash never leaves a folder
    that looks finished.
    """
    target = converted_path(gguf)
    if (target / READY_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / READY_MARKER).exists():
            return target
        progress(f"Converting {gguf.name} into a plain Hugging Face folder (once): {target}")
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _dequantize(gguf, tmp)
            (tmp / READY_MARKER).write_text(json.dumps({"source": str(gguf.resolve())}) + "\n")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _dequantize(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        # Big models are kept in bf16 so a 13B model needs 26 GB, not 52 GB; small ones stay fp32.
        big = gguf.stat().st_size > 2 * 1024**3
        dtype = torch.bfloat16 if big else torch.float32
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    except (ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise TunewizError(f"cannot load {gguf} as a base model: {str(exc).rstrip('.')}. transformers dequantizes "
                           "GGUF files of the architectures it supports (llama, mistral, qwen2, "
                           "phi3, gemma, ...); use a Hugging Face folder of this model instead") from None
    # A model loaded from GGUF refuses save_pretrained; a fresh one built from its config does not.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    config.dtype = dtype
    # The weights are plain floats now; a 'gguf' quantization note would make llama.cpp's converter
    # and later loads treat the folder as quantized.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=dtype)
    fresh.load_state_dict(loaded.state_dict(), assign=True)
    if getattr(config, "tie_word_embeddings", False):
        fresh.tie_weights()
    out.mkdir(parents=True)
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def count_parameters(spec: str, gguf_file: str = "", relative_to: Path | None = None) -> int | None:
    """The number of weights of a base model, read from file headers (no torch); None if unknown."""
    gguf = locate_gguf(spec, gguf_file, relative_to)
    if gguf is not None:
        converted = converted_path(gguf)
        if (converted / READY_MARKER).exists():
            return _safetensors_parameters(converted)
        return _gguf_parameters(gguf)
    path = _as_path(spec, relative_to)
    if path.is_dir():
        return _safetensors_parameters(path)
    return None


def _safetensors_parameters(folder: Path) -> int | None:
    total = 0
    files = list(folder.glob("*.safetensors"))
    for file in files:
        with open(file, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total or None


def _gguf_parameters(gguf: Path) -> int | None:
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    reader = GGUFReader(str(gguf))
    total = 0
    for tensor in reader.tensors:
        count = 1
        for dim in tensor.shape:
            count *= int(dim)
        total += count
    return total


def read_config(folder: Path) -> dict:
    """config.json of an HF folder (for the memory estimate)."""
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- checks of a base model folder

FLOAT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def safetensors_headers(folder: Path) -> dict[str, dict[str, Any]]:
    """Tensor name -> {dtype, shape} of every safetensors file in a folder (headers only, no torch)."""
    tensors: dict[str, dict[str, Any]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with open(file, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        header.pop("__metadata__", None)
        tensors.update(header)
    return tensors


def check_base(base_dir: Path, adapter_dir: Path, run_json: Path) -> str:
    """Check that the base model is there, unquantized, and still the model the adapter was trained
    on (every adapted layer exists with the shape the adapter expects). Returns its float dtype."""
    if not (base_dir / "config.json").is_file():
        raise TunewizError(f"{run_json}: base_dir {base_dir} is gone (no config.json there); the run "
                           "trained on that folder, so restore it or retrain")
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    quant = (config.get("quantization_config") or {}).get("quant_method")
    if quant and quant != "gguf":  # 'gguf' only records where dequantized weights came from
        raise TunewizError(f"{base_dir / 'config.json'}: the base model is quantized ({quant}); a LoRA "
                           "merged into a quantized base loses quality. Point the run at a 16/32-bit copy")
    base = safetensors_headers(base_dir)
    if not base:
        raise TunewizError(f"{base_dir}: no .safetensors weights; the merge needs the base model's weights")
    dtypes = {info["dtype"] for info in base.values()}
    if not dtypes <= set(FLOAT_DTYPES):
        raise TunewizError(f"{base_dir}: weights of type {', '.join(sorted(dtypes - set(FLOAT_DTYPES)))}; "
                           "the merge needs a 16/32-bit base model")
    adapter = safetensors_headers(adapter_dir)
    if not adapter:
        raise TunewizError(f"{adapter_dir}: no adapter_model.safetensors; not a LoRA checkpoint")
    for name, info in adapter.items():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        module = name.split(".lora_")[0].removeprefix("base_model.model.")
        weight = base.get(f"{module}.weight")
        mismatch = weight is None
        if weight is not None:
            out_features, in_features = weight["shape"][0], weight["shape"][-1]
            mismatch = (info["shape"][-1] != in_features if ".lora_A." in name
                        else info["shape"][0] != out_features)
        if mismatch:
            raise TunewizError(f"{base_dir}: the base model no longer matches run checkpoint {adapter_dir} "
                               f"(layer {module} is missing or has another shape); the folder was replaced "
                               "after training. Restore the original base model or retrain")
    return FLOAT_DTYPES["BF16"] if dtypes == {"BF16"} else FLOAT_DTYPES["F16"] if dtypes == {"F16"} else "float32"
