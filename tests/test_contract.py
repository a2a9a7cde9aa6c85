"""The model contract's file facts (edge.contract): names, the manifest, the runtime table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.backends import TensorInfo
from edge.contract import (
    DEFAULT_MODEL,
    EXPORTED,
    MANIFEST,
    MANIFEST_SCHEMA,
    METADATA_SCHEMA,
    RUNTIMES,
    check_metadata,
    default_runtimes,
    extra_for,
    hash_files,
    incomplete_export,
    read_locator_report,
    read_manifest,
    remove_manifest,
    write_manifest,
)
from edge.errors import UserError
from edge.provenance import sha256_file
from tests.conftest import REPO


def test_file_names():
    assert EXPORTED == ("model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")
    assert DEFAULT_MODEL == "model_int8.tflite"


def test_every_runtime_comes_from_its_extra():
    """The table's pip extras are pyproject's, and each installs the runtime's distribution."""
    import tomllib  # Python 3.11+, as the test venvs are

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for rt in RUNTIMES.values():
        assert rt.extra in extras, rt
        assert any(req.startswith(rt.distribution) for req in extras[rt.extra]), (rt, extras[rt.extra])
    assert extra_for(".tflite") == "edge" and extra_for(".onnx") == "edge-onnx"
    assert default_runtimes(".onnx") == ("onnxruntime",)
    assert default_runtimes(".png") == default_runtimes(".tflite") == ("litert", "tflite-runtime")
    for suffix in (".tflite", ".onnx"):
        assert all(suffix in RUNTIMES[rt].suffixes for rt in default_runtimes(suffix))


def test_manifest_round_trip_and_hashes(tmp_path):
    for name in EXPORTED[:2]:
        (tmp_path / name).write_bytes(name.encode())
    assert incomplete_export(tmp_path) == list(EXPORTED[:2])  # files, but no manifest yet
    assert read_manifest(tmp_path) is None
    files = {n: {"sha256": sha256_file(tmp_path / n), "bytes": len(n)} for n in EXPORTED[:2]}
    path = write_manifest(tmp_path, {"arch": "edge", "files": files})
    assert path == tmp_path / MANIFEST and incomplete_export(tmp_path) == []
    m = read_manifest(tmp_path / EXPORTED[0])  # beside a model, or the folder itself
    assert list(m) == ["schema", "arch", "files"] and m["schema"] == MANIFEST_SCHEMA
    assert m == read_manifest(tmp_path)
    (tmp_path / EXPORTED[1]).write_bytes(b"changed")
    (tmp_path / "model_extra.onnx").write_bytes(b"x")
    got = {h.name: (h.sha256 == h.listed, h.listed is None) for h in hash_files(tmp_path, m)}
    assert got == {EXPORTED[0]: (True, False), EXPORTED[1]: (False, False), "model_extra.onnx": (False, True)}
    remove_manifest(tmp_path)
    assert read_manifest(tmp_path) is None


def test_a_file_the_manifest_lists_but_is_missing(tmp_path):
    write_manifest(tmp_path, {"files": {DEFAULT_MODEL: {"sha256": "0" * 64}}})
    (h,) = hash_files(tmp_path, read_manifest(tmp_path))
    assert (h.name, h.sha256, h.listed) == (DEFAULT_MODEL, None, "0" * 64)


def test_a_bad_manifest_is_one_line(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"files": ["model_int8.tflite"]}))
    with pytest.raises(UserError, match=r"manifest.json: 'files' is a list"):
        read_manifest(tmp_path)
    (tmp_path / "locator.json").write_text("{not json")
    with pytest.raises(UserError, match=r"locator.json: not a readable JSON locator report"):
        read_locator_report(tmp_path)


def test_what_export_writes_is_what_a_device_accepts():
    from export.metadata import build

    i = TensorInfo("image", (-1, 28, 28, 1), np.dtype("int8"), 1 / 255, -128)
    o = TensorInfo("probs", (-1, 10), np.dtype("int8"), 1 / 256, -128)
    meta = build("tflite", "int8", i, o, {"arch": "edge"}, kind="logits")
    assert meta["schema"] == METADATA_SCHEMA
    assert check_metadata(json.loads(json.dumps(meta)), "model_int8.tflite") == meta
