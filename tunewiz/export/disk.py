"""Free disk space: estimate what an export writes and refuse before writing any of it.

Sizes come from the number of weights (read from the base model's safetensors
headers, no torch) times the bytes per weight of each format. K-quant files mix
block types, so their figures are the averages llama.cpp reports for Llama models,
rounded up; a margin covers the tokenizer, metadata and estimates that run low.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tunewiz.errors import TunewizError

BYTES_PER_WEIGHT = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 1.07,
    "q6_k": 0.83, "q5_k_m": 0.72, "q5_k_s": 0.70, "q5_0": 0.69, "q5_1": 0.75,
    "q4_k_m": 0.62, "q4_k_s": 0.58, "q4_0": 0.57, "q4_1": 0.63, "iq4_nl": 0.57, "iq4_xs": 0.54,
    "q3_k_l": 0.54, "q3_k_m": 0.50, "q3_k_s": 0.44, "q2_k": 0.42,
}
"""Average bytes per weight of each file type; unknown quantized types count as q8_0."""

MARGIN = 1.10
FIXED_EXTRA = 64 * 1024**2
"""Tokenizer files, GGUF metadata, the smoke-test report: a flat allowance."""


def file_size_estimate(parameters: int, ftype: str) -> int:
    return int(parameters * BYTES_PER_WEIGHT.get(ftype, BYTES_PER_WEIGHT["q8_0"]))


def free_bytes(path: Path) -> int:
    """Free bytes on the file system holding `path` (its nearest existing parent)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def check_free_space(where: Path, needs: dict[str, int]) -> int:
    """Raise TunewizError naming each artefact when `where` has too little room; return the total."""
    total = int(sum(needs.values()) * MARGIN) + FIXED_EXTRA
    free = free_bytes(where)
    if free < total:
        parts = ", ".join(f"{name} ~{human(size)}" for name, size in needs.items())
        raise TunewizError(
            f"{where}: not enough free disk space for this export: it needs about {human(total)} "
            f"({parts}, plus a margin) and {human(free)} is free. Free some space, export fewer GGUF "
            "types (export.gguf_types) or write elsewhere; nothing was written")
    return total
