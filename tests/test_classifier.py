"""The Classifier against an independent reference: the interpreter driven by hand on seeded digits."""

import numpy as np
import pytest

from edge.classifier import Classifier


def _reference_probs(path, images):
    """Quantise, invoke and dequantise by hand with LiteRT, one image at a time; softmax when the
    metadata appended to the file says the output is logits."""
    import json
    import zipfile

    from ai_edge_litert.interpreter import Interpreter

    try:
        with zipfile.ZipFile(path) as z:
            logits = json.loads(z.read("mnist_edge.json"))["output"]["kind"] == "logits"
    except zipfile.BadZipFile:
        logits = False

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for img in images:
        x = img.astype(np.float64)[None, :, :, None] / 255.0
        if np.issubdtype(i["dtype"], np.integer):
            s, z = i["quantization"]
            info = np.iinfo(i["dtype"])
            x = np.clip(np.round(x / s) + z, info.min, info.max)
        it.set_tensor(i["index"], x.astype(i["dtype"]))
        it.invoke()
        y = it.get_tensor(o["index"]).astype(np.float64)
        if np.issubdtype(o["dtype"], np.integer):
            s, z = o["quantization"]
            y = (y - z) * s
        if logits:
            y = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
        out.append(y[0])
    return np.array(out)


@pytest.fixture(scope="module")
def digits(mnist):
    idx = np.random.default_rng(7).choice(len(mnist.x_test), 64, replace=False)
    return mnist.x_test[idx], mnist.y_test[idx]


@pytest.mark.parametrize("name", ["model_fp32.tflite", "model_int8.tflite"])
def test_matches_hand_driven_interpreter(exported, digits, name):
    out, _ = exported
    images, _ = digits
    clf = Classifier(out / name)
    np.testing.assert_allclose(clf.probabilities(images), _reference_probs(out / name, images), atol=1e-6)


def test_uint8_io_model(exported, digits, tmp_path):
    """A uint8-in/uint8-out int8 model: the Classifier takes its parameters from the model itself."""
    tf = pytest.importorskip("tensorflow")
    import keras

    from export.calibration import Calibration, tflite_representative_dataset
    from train.data import preprocess
    from train.model import custom_objects

    out, _ = exported
    images, labels = digits
    model = keras.models.load_model(out / "model.keras", custom_objects=custom_objects())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = tflite_representative_dataset(
        Calibration(preprocess(images), np.arange(len(images)), 0))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    path = tmp_path / "u8.tflite"
    path.write_bytes(conv.convert())
    clf = Classifier(path)
    assert clf.backend.input.dtype == np.uint8 and clf.backend.output.dtype == np.uint8
    p = clf.probabilities(images)
    np.testing.assert_allclose(p, _reference_probs(path, images), atol=1e-6)
    int8 = Classifier(out / "model_int8.tflite").probabilities(images)
    assert (p.argmax(1) == int8.argmax(1)).mean() > 0.95


def test_classify_returns_dataclasses_and_timing(exported, digits):
    out, _ = exported
    images, _ = digits
    clf = Classifier(out / "model_int8.onnx")
    preds = clf.classify(images[:5])
    p = clf.probabilities(images[:5])
    assert [x.digit for x in preds] == p.argmax(1).tolist()
    assert all(x.label == str(x.digit) and 0 < x.confidence <= 1 for x in preds)
    np.testing.assert_allclose(preds[0].probabilities, p[0])
    t = clf.last_timing
    assert t.inference_ms > 0 and t.preprocess_ms >= 0 and t.postprocess_ms >= 0
    single = clf.classify(images[0])
    assert len(single) == 1 and single[0].digit == preds[0].digit


def test_rejects_wrong_images(exported):
    out, _ = exported
    clf = Classifier(out / "model_int8.tflite")
    with pytest.raises(ValueError, match="expected uint8 images"):
        clf.classify(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="expected uint8 images"):
        clf.classify(np.zeros((1, 32, 32), np.uint8))
