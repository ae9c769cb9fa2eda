"""Resolving the base model: clear errors for what cannot be loaded."""

from __future__ import annotations

import pytest

from tunewiz.basemodel import convert_gguf, locate_gguf, resolve_base
from tunewiz.errors import TunewizError


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(TunewizError, match="does not exist"):
        resolve_base(str(tmp_path / "nope"))


def test_a_folder_with_several_gguf_files_asks_which(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"x")
    (tmp_path / "b.gguf").write_bytes(b"x")
    with pytest.raises(TunewizError, match="several GGUF files.*gguf_file"):
        locate_gguf(str(tmp_path))
    assert locate_gguf(str(tmp_path), "b.gguf") == tmp_path / "b.gguf"


def test_an_hf_folder_is_used_as_it_is(tiny_model):
    assert resolve_base(str(tiny_model)) == tiny_model


def test_an_unsupported_gguf_architecture_gets_a_clear_error(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "odd.gguf"
    writer = GGUFWriter(str(path), "nosucharch")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(TunewizError, match="cannot load .*odd.gguf"):
        convert_gguf(path, progress=lambda text: None)


def test_the_same_gguf_in_another_environment_reuses_its_conversion(tmp_path, monkeypatch):
    # Every new venv (and fresh clone) installs the packaged GGUF at a new path and time: keyed by
    # path, each added another copy of the converted weights to the cache.
    import os
    import shutil

    from tunewiz.basemodel import converted_path

    monkeypatch.setenv("TUNEWIZ_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "venv-a" / "model.gguf"
    first.parent.mkdir()
    first.write_bytes(os.urandom(3 << 20))
    second = tmp_path / "venv-b" / "model.gguf"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    os.utime(second, (1, 1))
    assert converted_path(first) == converted_path(second)
    changed = bytearray(second.read_bytes())
    changed[len(changed) // 2] ^= 0xFF  # a different model of the same size and header
    second.write_bytes(bytes(changed))
    assert converted_path(first) != converted_path(second)


def test_a_gguf_changed_in_place_gets_a_new_conversion(tmp_path, monkeypatch):
    # gguf-set-metadata rewrites a stop token in place: same path, same size, a byte far from the
    # head, middle and tail. The old conversion (old stop token, old weights) must not be reused.
    import os

    from tunewiz.basemodel import converted_path

    monkeypatch.setenv("TUNEWIZ_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(os.urandom(8 << 20))
    before = converted_path(gguf)
    assert converted_path(gguf) == before  # remembered: the same folder again
    with gguf.open("r+b") as handle:
        handle.seek(1_768_954)
        byte = handle.read(1)[0]
        handle.seek(1_768_954)
        handle.write(bytes([byte ^ 0xFF]))
    os.utime(gguf, ns=(gguf.stat().st_atime_ns, gguf.stat().st_mtime_ns + 1_000_000))
    assert converted_path(gguf) != before
