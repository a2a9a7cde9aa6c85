"""The OpenVINO backend: it reads the exported .tflite and .onnx files directly and must read real
digits exactly as the runtime each file was made for (LiteRT, onnxruntime)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.classifier import Classifier
from edge.errors import UserError
from tests.conftest import cli

pytest.importorskip("openvino")

FILES = ("model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")
MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.mark.parametrize("name", FILES)
def test_same_predictions_as_the_files_own_runtime(exported, mnist, name):
    out, _ = exported
    x = mnist.x_test[:1000]
    ov = Classifier(out / name, runtime="openvino")
    own = Classifier(out / name)
    assert ov.runtime == "openvino" and own.runtime in ("litert", "onnxruntime")
    p_ov, p_own = ov.predict_batches(x, batch_size=256), own.predict_batches(x, batch_size=256)
    assert ov.backend.input.dtype == own.backend.input.dtype
    assert (p_ov.argmax(1) == p_own.argmax(1)).mean() >= 0.998, name
    np.testing.assert_allclose(p_ov.sum(1), 1.0, atol=1e-3)
    # single images too (the batch dimension is dynamic)
    assert [c.digit for c in ov.classify(x[:20])] == [ov.classify(x[i])[0].digit for i in range(20)]


def test_shipped_int8_onnx_runs_in_openvino_at_full_accuracy(mnist):
    path = MODELS / "model_int8.onnx"
    if not path.is_file():
        pytest.skip("no shipped models/model_int8.onnx")
    ov = Classifier(path, runtime="openvino", threads=None)
    pred = ov.predict_batches(mnist.x_test).argmax(1)
    ref = Classifier(path, runtime="onnxruntime", threads=None).predict_batches(mnist.x_test).argmax(1)
    assert (pred == mnist.y_test).mean() >= 0.994
    assert (pred == ref).mean() >= 0.999


def test_predict_cli_takes_runtime_openvino(exported, tmp_path, mnist):
    cv2 = pytest.importorskip("cv2")
    out, _ = exported
    img = np.full((60, 60), 255, np.uint8)
    img[16:44, 16:44] = 255 - mnist.x_test[0]  # dark ink on white paper, as a photo would be
    cv2.imwrite(str(tmp_path / "d.png"), img)
    r = cli("predict", str(tmp_path / "d.png"), "--model", str(out / "model_int8.onnx"),
            "--runtime", "openvino", "--json")
    ref = cli("predict", str(tmp_path / "d.png"), "--model", str(out / "model_int8.onnx"), "--json")
    assert r.returncode == 0 and ref.returncode == 0, r.stderr + ref.stderr
    got, want = json.loads(r.stdout.splitlines()[0]), json.loads(ref.stdout.splitlines()[0])
    assert got["reading"] == want["reading"] == str(mnist.y_test[0])


def test_openvino_cannot_run_other_files(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"x")
    with pytest.raises(UserError, match="expected a .tflite or .onnx"):
        Classifier(bad, runtime="openvino")


def test_openvino_sends_no_usage_event_unless_the_user_chose_to(tmp_path):
    """`import openvino` sends an event to Intel's analytics when no consent file says otherwise (and
    CI is not set). Opened through edge, nothing is sent where the user has not chosen; a choice made
    with OpenVINO's own opt_in_out stands."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(tmp_path)  # a user who never chose: no ~/intel/openvino_telemetry
    ask = ("from openvino_telemetry.utils.opt_in_checker import OptInChecker as C; "
           "print(C().check(enable_opt_in_dialog=False, disable_in_ci=True).name)")
    r = subprocess.run([sys.executable, "-c", ask], env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["NO_FILE"], r.stderr  # which OpenVINO's own import takes as consent
    opened = ("from edge.backends import import_runtime; import_runtime('openvino'); "
              "import openvino_telemetry as tm; print(tm.Telemetry().consent)")
    chosen_yes = ("from edge.backends import _decline_unchosen_telemetry as d; d(); " + ask)  # asked, not
    #   imported: an accepted consent would send
    cases = ((None, opened, "False"), ("0", opened, "False"), ("1", chosen_yes, "ACCEPTED"))
    for chosen, code, says in cases:
        if chosen is not None:
            (tmp_path / "intel").mkdir(exist_ok=True)
            (tmp_path / "intel" / "openvino_telemetry").write_text(chosen)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.split() == [says], (chosen, r.stdout, r.stderr[-2000:])
        assert "Traceback" not in r.stderr
