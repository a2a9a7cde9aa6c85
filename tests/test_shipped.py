"""The models in models/ are what the device commands run by default: they must be intact, accurate
and still what the training code builds."""

import json

import numpy as np
import pytest

from edge.classifier import Classifier
from edge.provenance import sha256_file
from tests.conftest import REPO

MODELS = REPO / "models"
FILES = ("model_int8.tflite", "model_fp32.tflite", "model_int8.onnx", "model_fp32.onnx")


def test_manifest_hashes_match_the_files():
    manifest = json.loads((MODELS / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(FILES)
    for name, entry in manifest["files"].items():
        assert sha256_file(MODELS / name) == entry["sha256"], name
        assert (MODELS / name).stat().st_size == entry["bytes"], name
    assert manifest["data"]["full_mnist"] is True
    assert (MODELS / "model_int8.tflite").stat().st_size <= 100 * 1024


def test_locator_report_hashes_match_the_shipped_locator_files():
    files = json.loads((MODELS / "locator.json").read_text())["files"]
    assert sorted(files) == ["locator_int8.onnx", "locator_int8.tflite"]
    for name, entry in files.items():
        assert sha256_file(MODELS / name) == entry["sha256"], name
        assert (MODELS / name).stat().st_size == entry["bytes"], name


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_int8.onnx"])
def test_shipped_int8_accuracy(mnist, name):
    if not mnist.is_full:
        pytest.skip("needs full MNIST")
    p = Classifier(MODELS / name).predict_batches(mnist.x_test)
    assert (p.argmax(1) == mnist.y_test).mean() >= 0.994


def test_model_card_quotes_the_run():
    card = (MODELS / "MODEL_CARD.md").read_text()
    train = json.loads((MODELS / "train.json").read_text())
    assert f"{100 * train['test_accuracy']:.2f} %" in card
    assert train["environment"]["git_commit"] in card


def test_training_code_builds_the_shipped_architecture():
    keras = pytest.importorskip("keras")
    from train.model import build_model, custom_objects

    train = json.loads((MODELS / "train.json").read_text())
    shipped = keras.models.load_model(MODELS / "model.keras", compile=False,
                                      custom_objects=custom_objects())
    built = build_model(train["arch"])

    def shape(model):
        return [(type(layer).__name__, tuple(layer.output.shape[1:]),
                 [tuple(w.shape) for w in layer.weights]) for layer in model.layers]

    assert shape(built) == shape(shipped)
    assert built.count_params() == train["params"] == shipped.count_params()
    x = np.zeros((1, 28, 28, 1), np.float32)
    assert shipped(x).shape == (1, 10)
