"""`mnist-edge doctor`: hashes against the manifest (✓/✗), runtimes, and its exit code."""

from __future__ import annotations

import os
import re
import shutil

from tests.conftest import REPO, cli

FILES = ("model_fp32.onnx", "model_fp32.tflite", "model_int8.onnx", "model_int8.tflite")


def differs(folder, name: str, listing: str = "manifest.json") -> str:
    """The reason doctor's "not ready" line gives for a file whose hash is not its listing's."""
    import json

    from edge.provenance import sha256_file

    want = json.loads((folder / listing).read_text())["files"][name]["sha256"]
    return f"{name} differs from its {listing} (sha256 {want[:12]}… expected, " \
           f"{sha256_file(folder / name)[:12]}… found)"


def lines_for(stdout: str, name: str) -> list[str]:
    """The ✓/✗ lines about one file: its hash, then each runtime it was tried in."""
    return [line.strip() for line in stdout.splitlines()
            if line.strip()[:1] in ("✓", "✗", "-", "?") and f" {name} " in line]


def test_doctor_on_exported_folder(exported):
    folder = exported[0]
    r = cli("doctor", "--model", str(folder), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in FILES:
        hashes, runs = lines_for(r.stdout, name)
        assert hashes.startswith("✓") and "matches the manifest" in hashes, hashes
        assert runs.startswith("✓") and "ms per digit" in runs, runs
    assert "✓ litert" in r.stdout and "✓ onnxruntime" in r.stdout and "✓ openvino" in r.stdout
    assert "numpy     2." in r.stdout or "numpy     1." in r.stdout
    assert "ready: model_int8.tflite runs in litert (and 3 more)" in r.stdout


def test_tampered_file_is_flagged_and_exits_1(exported, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(exported[0], folder)
    target = folder / "model_int8.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights: still loads and runs, but not as exported
    target.write_bytes(bytes(data))
    r = cli("doctor", "--model", str(folder), timeout=120)
    assert r.returncode == 1, r.stdout
    hashes, runs = lines_for(r.stdout, "model_int8.tflite")
    assert hashes.startswith("✗") and "but the manifest says" in hashes, hashes
    assert runs.startswith("✓")  # it was the hash, not a broken file, that failed the check
    for name in FILES[:3]:
        assert lines_for(r.stdout, name)[0].startswith("✓")
    assert f"not ready: {differs(folder, 'model_int8.tflite')}\n" in r.stdout
    assert "hint: a model file differs from" in r.stdout


def test_the_not_ready_line_names_the_file_that_differs(tmp_path):
    """It said "a model file differs from its manifest.json or locator.json", not which one."""
    folder = tmp_path / "models"
    shutil.copytree(REPO / "models", folder)
    data = bytearray((folder / "model_fp32.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights: still loads and runs, but not as exported
    (folder / "model_fp32.onnx").write_bytes(bytes(data))
    r = cli("doctor", "--model", str(folder), timeout=120)
    assert r.returncode == 1, r.stdout
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("not ready: "))
    assert line == f"not ready: {differs(folder, 'model_fp32.onnx')}", line
    assert re.fullmatch(r"not ready: model_fp32\.onnx differs from its manifest\.json "
                        r"\(sha256 [0-9a-f]{12}… expected, [0-9a-f]{12}… found\)", line), line


def test_no_model_exits_1_with_a_hint(tmp_path):
    r = cli("doctor", "--model", str(tmp_path), timeout=120)
    assert r.returncode == 1
    # the folder given is named, not the shipped model, which is there
    assert f"✗ no model (no classifier .tflite or .onnx in {tmp_path})" in r.stdout, r.stdout
    assert "hint: pass --model PATH" in r.stdout


def test_missing_model_path_is_one_line(tmp_path):
    r = cli("doctor", "--model", str(tmp_path / "nope.tflite"), timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"mnist-edge doctor: error: --model {tmp_path / 'nope.tflite'}: " \
                               "no such file or folder"


def test_doctor_checks_the_locator_camera_and_predict_use(tmp_path):
    """The shipped folder: the locator files are not taken for classifiers, the locator beside the
    model runs; a locator file that does not load makes the device not ready."""
    folder = tmp_path / "models"
    shutil.copytree(REPO / "models", folder)
    r = cli("doctor", "--model", str(folder), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    models = r.stdout.split("\nmodels\n")[1].split("\ndigit locator\n")
    assert "locator_int8" not in models[0]  # never tried as a digit classifier
    assert lines_for(models[1], "locator_int8.tflite")[0].startswith("✓ locator_int8.tflite    litert")
    for name in ("locator_int8.tflite", "locator_int8.onnx"):  # hashes against the locator's report
        assert "matches locator.json" in lines_for(r.stdout, name)[0], r.stdout
    data = bytearray((folder / "locator_int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights: it still runs, but is not the file trained
    (folder / "locator_int8.tflite").write_bytes(bytes(data))
    r = cli("doctor", "--model", str(folder), timeout=120)
    hashed, ran = lines_for(r.stdout, "locator_int8.tflite")
    assert r.returncode == 1 and hashed.startswith("✗") and ran.startswith("✓"), r.stdout
    assert f"not ready: {differs(folder, 'locator_int8.tflite', 'locator.json')}\n" in r.stdout
    (folder / "locator_int8.tflite").write_bytes(b"TFL3 not a model")
    r = cli("doctor", "--model", str(folder), timeout=120)
    assert r.returncode == 1, r.stdout
    hashed, ran = lines_for(r.stdout, "locator_int8.tflite")
    assert hashed.startswith("✗") and "but locator.json says" in hashed, hashed
    assert "hint: a locator file differs from" in r.stdout
    assert ran.startswith("✗")
    assert f"not ready: {differs(folder, 'locator_int8.tflite', 'locator.json')}; " \
        "the digit locator does not run" in r.stdout
    assert "--locator none" in r.stdout


def test_a_file_export_marked_failed_is_flagged_and_exits_1(exported, tmp_path):
    """export writes an int8 file whose accuracy fell too far (and exits 1), and the manifest records
    ✗: doctor must not call that folder ready although every hash matches."""
    import json

    folder = tmp_path / "copy"
    shutil.copytree(exported[0], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    v = manifest["files"]["model_int8.tflite"]["validation"]
    assert v["ok"] and v["precision"] == "int8", v  # what export wrote for a file that passed
    v["ok"] = False
    v["figures"] |= {"accuracy": 0.9712, "delta_pp": -2.4, "max_drop_pp": 0.3}  # as a failed export writes
    (folder / "manifest.json").write_text(json.dumps(manifest))
    r = cli("doctor", "--model", str(folder), timeout=120)
    assert r.returncode == 1, r.stdout
    hashes, runs = lines_for(r.stdout, "model_int8.tflite")
    assert hashes.startswith("✗") and "matches the manifest, but it failed export's validation: " \
        "97.12 % on MNIST test, -2.40 pp against Keras (at most 0.3 pp lower allowed)" in hashes, hashes
    assert runs.startswith("✓")  # it loads and runs: only the manifest knows it reads badly
    for name in FILES[:3]:
        assert lines_for(r.stdout, name)[0].startswith("✓")
    assert "not ready: model_int8.tflite failed export's validation\n" in r.stdout
    assert "hint: model_int8.tflite failed export's validation: export again" in r.stdout
    assert "differs from" not in r.stdout
    data = bytearray((folder / "model_int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01  # and then changed: that is what it is told as
    (folder / "model_int8.tflite").write_bytes(bytes(data))
    r = cli("doctor", "--model", str(folder), timeout=120)
    assert r.returncode == 1 and "but the manifest says" in lines_for(r.stdout, "model_int8.tflite")[0]
    assert f"not ready: {differs(folder, 'model_int8.tflite')}\n" in r.stdout
    assert "hint: a model file differs from" in r.stdout and "failed export's validation" not in r.stdout


def only_onnxruntime(tmp_path) -> dict:
    """The environment of a device with onnxruntime alone: the other interpreters do not import."""
    for module in ("ai_edge_litert", "tflite_runtime", "openvino"):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError({f'No module named {module!r}'!r}, name={module!r})\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}


def test_runtime_picks_the_shipped_model_it_runs_as_predict_does(tmp_path):
    """Without --model, doctor checked the shipped .tflite alone, even on a device with only
    onnxruntime; --runtime picks the model as predict and camera do (the .onnx for onnxruntime)."""
    env = only_onnxruntime(tmp_path)
    r = cli("doctor", "--runtime", "onnxruntime", env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "✗ litert" in r.stdout and "✓ onnxruntime" in r.stdout  # the device this is
    models = r.stdout.split("\nmodels\n")[1].split("\ndigit locator\n")
    assert lines_for(models[0], "model_int8.onnx")[0].startswith("✓ model_int8.onnx        onnxruntime")
    assert ".tflite" not in models[0], models[0]
    assert lines_for(models[1], "locator_int8.onnx")[0].startswith("✓ locator_int8.onnx      onnxruntime")
    assert "ready: model_int8.onnx runs in onnxruntime" in r.stdout
    # without --runtime it takes the .tflite, as predict does, and says which --runtime would do
    r = cli("doctor", env=env, timeout=120)
    assert r.returncode == 1 and "no runtime for .tflite here" in r.stdout, r.stdout
    assert "hint: or pass --runtime onnxruntime (to doctor, predict and camera) to use the shipped " \
        "model_int8.onnx" in r.stdout
    shipped = REPO / "models" / "model_int8.tflite"
    r = cli("doctor", "--model", str(shipped), "--runtime", "onnxruntime", timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == f"mnist-edge doctor: error: --model {shipped}: a " \
        ".tflite file, which --runtime onnxruntime does not run (it runs .onnx files)", r.stderr
    r = cli("doctor", "--runtime", "tensorrt", timeout=120)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.strip() == "mnist-edge doctor: error: --runtime tensorrt: expected one of litert, " \
                               "tflite-runtime, onnxruntime, openvino"
