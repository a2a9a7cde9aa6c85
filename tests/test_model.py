import numpy as np
import pytest

pytest.importorskip("keras")

from train.model import build_augmentation, build_model, count_macs  # noqa: E402


def _reference_macs(layers):
    """Independent count: (out_h, out_w, out_c, k, in_c) per conv plus (in, out) per dense."""
    return sum(h * w * c * k * k * i for h, w, c, k, i in layers[0]) + sum(i * o for i, o in layers[1])


def test_baseline_is_the_classic_keras_cnn():
    m = build_model("baseline")
    assert m.output_shape == (None, 10)
    # conv 3x3x1x32+32, conv 3x3x32x64+64, dense 9216x256+256, dense 256x10+10
    assert m.count_params() == 320 + 18496 + 2359552 + 2570
    assert count_macs(m) == _reference_macs(([(26, 26, 32, 3, 1), (24, 24, 64, 3, 32)],
                                             [(9216, 256), (256, 10)]))


def test_edge_arch_is_small_and_cheap():
    m = build_model("edge")
    assert m.input_shape == (None, 28, 28, 1) and m.output_shape == (None, 10)
    assert m.count_params() < 100_000
    assert count_macs(m) == _reference_macs((
        [(12, 12, 16, 3, 4), (10, 10, 32, 3, 16), (8, 8, 32, 3, 32), (6, 6, 32, 3, 32), (4, 4, 64, 3, 32)],
        [(64, 10)]))
    assert count_macs(m) < 2_000_000
    names = [type(layer).__name__ for layer in m.layers]
    assert "BatchNormalization" in names and "Dense" in names and names.count("Dense") == 1
    convs = [layer for layer in m.layers if type(layer).__name__ == "Conv2D"]
    assert min(layer.input.shape[-1] for layer in convs) >= 4  # no conv over a single channel
    assert names[-1] == "Softmax"  # export cuts it off: the files output logits


def test_space_to_depth_matches_tensorflow_and_reloads(tmp_path):
    import keras
    import tensorflow as tf

    from train.model import custom_objects, logits_model

    m = build_model("edge")
    x = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    s2d = np.asarray(m.get_layer("space_to_depth")(x))
    np.testing.assert_array_equal(s2d, tf.nn.space_to_depth(x, 2).numpy())
    m.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", custom_objects=custom_objects(), compile=False)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(m(x)), atol=1e-6)
    logits = np.asarray(logits_model(m)(x))
    np.testing.assert_allclose(np.asarray(tf.nn.softmax(logits)), np.asarray(m(x)), atol=1e-6)
    assert logits_model(build_model("baseline")).layers[-1].name == "probs"  # nothing to cut


def test_outputs_are_probabilities():
    m = build_model("edge")
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    p = np.asarray(m(x, training=False))
    assert p.shape == (4, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_augmentation_is_identity_at_inference_and_varies_in_training():
    aug = build_augmentation(seed=0)
    x = np.zeros((2, 28, 28, 1), np.float32)
    x[:, 10:18, 12:16] = 1.0
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    assert not np.allclose(np.asarray(aug(x, training=True)), x)


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("resnet")


def test_dropout_rate_reaches_the_model_from_the_command_line():
    from train.train import _start, config, get_args_parser

    cfg = config(get_args_parser().parse_args(["--dropout", "0.1"]))
    rates = [layer.rate for layer in _start(cfg).layers if type(layer).__name__ == "Dropout"]
    assert rates == [0.1, 0.1]
    default = [layer.rate for layer in build_model("edge").layers if type(layer).__name__ == "Dropout"]
    assert default == [0.25, 0.25]
