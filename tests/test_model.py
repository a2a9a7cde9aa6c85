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
        [(26, 26, 8, 3, 1), (11, 11, 16, 3, 8), (9, 9, 32, 3, 16), (7, 7, 32, 3, 32), (5, 5, 64, 3, 32)],
        [(64, 10)]))
    assert count_macs(m) < 2_000_000
    names = [type(layer).__name__ for layer in m.layers]
    assert "BatchNormalization" in names and "Dense" in names and names.count("Dense") == 1


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
