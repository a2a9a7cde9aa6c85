"""The digit locator's network: `build` makes it, `loss` trains it, `from_tflite` reads it back out
of a shipped .tflite (int8 or fp32) to fine-tune it, `widen` gives it more channels computing the
same outputs (the classifier's twin is train/model.py).

    >>> from train.locator_model import build
    >>> build().output_shape
    (None, 60, 80, 5)
"""

from __future__ import annotations

import numpy as np

from edge import locator as L
from edge.errors import UserError


def build(width: int = 32, batch_norm: bool = True):
    """Input 240x320x1 (pixels / 255) -> (60, 80, 5) per-cell outputs (edge.locator.CHANNELS).
    A small hourglass: stride-2 convs go down to a 15x20 grid, whose 3x3 convs see ~250 frame
    pixels, so the biggest digit is seen whole; learned 2x upsamplings bring that context back up and
    add it to the stride-8 and stride-4 features, which still tell a narrow "1" apart from its
    neighbour. The frame enters as 2x2 patches stacked into channels (120x160x4, as the classifier's
    image does, train/model.py): a 2x2 conv over them is a 4x4 stride-2 conv over the pixels, which
    holds any 3x3 stride-2 one (`strided_stem` maps one to the other), and an int8 conv over a single
    input channel is XNNPACK's slowest. Only plain and transposed convs, adds, ReLUs and the patches'
    reshapes: every op is XNNPACK's in int8 once the batch is fixed (`export_all` exports it for batch
    1: a transposed conv's output shape is then static)."""
    import keras
    from keras import layers

    from train.model import custom_objects

    norm = layers.BatchNormalization if batch_norm else (lambda: (lambda x: x))

    def conv(x, filters, stride=1):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=not batch_norm)(x)
        return layers.ReLU()(norm()(x))

    def up(x, skip):
        x = layers.Conv2DTranspose(skip.shape[-1], 2, strides=2, use_bias=not batch_norm)(x)
        return conv(layers.Add()([norm()(x), skip]), skip.shape[-1])

    i = keras.Input((*L.INPUT_HW, 1), name="image")
    x = custom_objects()["SpaceToDepth"](2, name="space_to_depth")(i)  # 120x160x4
    x = layers.ReLU()(norm()(layers.Conv2D(8, 2, padding="same", use_bias=not batch_norm)(x)))  # stride 2
    fine = conv(x, 16, stride=2)  # stride 4: the output grid
    mid = conv(conv(fine, width, stride=2), width)  # stride 8
    x = conv(conv(mid, width, stride=2), width)  # stride 16
    x = up(up(x, mid), fine)
    out = layers.Conv2D(len(L.CHANNELS), 1, name="grid",
                        bias_initializer=keras.initializers.Constant([-4.0, 0, 0, 0.5, 0.5]))(x)
    return keras.Model(i, out, name="locator")


def loss(y_true, y_pred):
    """CenterNet's penalty-reduced focal loss on the centre heat, L1 on size and offset at centres;
    both per digit."""
    import keras.ops as K

    heat, centre = y_true[..., 0], y_true[..., 1]
    p = K.clip(K.sigmoid(y_pred[..., 0]), 1e-4, 1 - 1e-4)
    pos = -K.log(p) * (1 - p) ** 2 * centre
    neg = -K.log(1 - p) * p ** 2 * (1 - heat) ** 4 * (1 - centre)
    reg = K.sum(K.abs(y_true[..., 2:6] - y_pred[..., 1:5]), axis=-1) * centre
    n = K.maximum(K.sum(centre), 1.0)
    return (K.sum(pos) + K.sum(neg) + K.sum(reg)) / n


def strided_stem(kernel: np.ndarray) -> np.ndarray:
    """A 3x3 stride-2 conv's kernel over one channel (3, 3, 1, n) -> the 2x2 conv's kernel over 2x2
    patches (2, 2, 4, n) that gives the same outputs. With "same" padding on an even-sized input,
    output (i, j) of the strided conv reads pixels 2i..2i+2 x 2j..2j+2, and the 2x2 conv reads patches
    i..i+1 x j..j+1 (pixels 2i..2i+3), pixel (2i + 2p + dy, ...) being channel 2 dy + dx of patch
    (i + p, ...); the window's fourth row and column get zero weights.

        >>> import numpy as np
        >>> k = strided_stem(np.arange(9.0).reshape(3, 3, 1, 1))
        >>> k.shape, k[0, 0, :, 0].tolist(), k[1, 1, :, 0].tolist()
        ((2, 2, 4, 1), [0.0, 1.0, 3.0, 4.0], [8.0, 0.0, 0.0, 0.0])
    """
    out = np.zeros((2, 2, 4, kernel.shape[-1]), np.float32)
    for a in range(3):
        for b in range(3):
            out[a // 2, b // 2, 2 * (a % 2) + b % 2] = kernel[a, b, 0]
    return out


def from_tflite(path: str):
    """A locator .tflite (int8 or fp32) -> the same network in Keras, to fine-tune without its
    .keras file: BatchNorm is folded into the convs in the file, so the weights (dequantised where
    int8: weight x its channel's scale; bias x its scale) go into `build(batch_norm=False)`. The
    convs are read in the file's op order (LiteRT's op list), which is the order `build` makes them.
    A locator made before the 2x2-patch stem (its first conv a 3x3 stride-2 one over the pixels) comes
    back as today's network computing the same outputs (`strided_stem`)."""
    from edge.backends import open_backend

    it = open_backend(path, "litert").interp
    hw = tuple(int(v) for v in it.get_input_details()[0]["shape"][1:3])
    if hw != L.INPUT_HW:
        raise UserError(f"--init {path}: a locator for {hw[1]}x{hw[0]} input; expected "
                        f"{L.INPUT_HW[1]}x{L.INPUT_HW[0]} (retrain without --init)")
    tensors = {t["index"]: t for t in it.get_tensor_details()}

    def real(index: int) -> np.ndarray:
        q = tensors[index]["quantization_parameters"]
        value = it.get_tensor(index).astype(np.float32)
        if len(q["scales"]) == 0:
            return value
        shape = [1] * value.ndim
        shape[q["quantized_dimension"]] = -1
        return (value - q["zero_points"].reshape(shape)) * q["scales"].reshape(shape).astype(np.float32)

    weights = []  # per conv in graph order: kernel in Keras' layout, then bias
    for op in it._get_ops_details():
        if op["op_name"] == "CONV_2D":  # filter (out, kh, kw, in) -> (kh, kw, in, out)
            weights += [real(op["inputs"][1]).transpose(1, 2, 3, 0), real(op["inputs"][2])]
        elif op["op_name"] == "TRANSPOSE_CONV":  # filter (out, kh, kw, in) -> (kh, kw, out, in)
            weights += [real(op["inputs"][1]).transpose(1, 2, 0, 3), real(op["inputs"][3])]
    if weights and weights[0].shape[:3] == (3, 3, 1):  # the stem of a locator made before 2026-12
        weights[0] = strided_stem(weights[0])
    width = int(weights[4].shape[-1])  # the third conv's outputs: the grid-resolution width
    model = build(width, batch_norm=False)
    want = [tuple(w.shape) for w in model.get_weights()]
    if [tuple(w.shape) for w in weights] != want:
        raise UserError(f"--init {path}: not a locator this code builds (its convs do not match)")
    model.set_weights(weights)
    return model


def width_of(model) -> int:
    """The grid-resolution width a locator was built with (its third conv's outputs)."""
    return int([w for w in model.get_weights() if w.ndim == 4][2].shape[-1])


def widen(model, width: int, seed: int = 0):
    """A locator without BatchNorm (`from_tflite`'s) -> the same network `width` channels wide that
    computes the same outputs (Net2Net's "wider" step), to fine-tune into the room the new channels
    give without starting afresh. Each new channel's incoming weights are fresh (`build`'s
    initialisers, seeded), and so are those by which new channels read new channels; those by which an
    old channel would read a new one start at zero, so the old channels, and the output, are as they
    were until training moves them. Only the grid-resolution layers widen; the stem, the stride-4
    layers and the output stay as they are.

        >>> import numpy as np
        >>> narrow = build(8, batch_norm=False)
        >>> wide = widen(narrow, 12)
        >>> x = np.random.default_rng(0).random((1, 240, 320, 1), np.float32)
        >>> width_of(wide), bool(np.allclose(wide(x), narrow(x), atol=1e-5))
        (12, True)
    """
    import keras

    from edge.errors import UserError

    old = width_of(model)
    if width < old:
        raise UserError(f"--width {width}: the --init locator is {old} wide; a locator only widens")
    if any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers):
        raise UserError("--width: widening reads a locator without BatchNorm; give the --init "
                        "locator's .tflite (its BatchNorm folded into the convs)")
    keras.utils.set_random_seed(seed)
    wide = build(width, batch_norm=False)
    for new, was in zip((lay for lay in wide.layers if lay.weights),
                        (lay for lay in model.layers if lay.weights), strict=True):
        kernel, bias = (w.copy() for w in new.get_weights())
        k_old, b_old = was.get_weights()
        into, outof = (3, 2) if isinstance(new, keras.layers.Conv2DTranspose) else (2, 3)  # kernel axes
        old_reads_new = [slice(None)] * 4
        old_reads_new[into] = slice(k_old.shape[into], None)
        old_reads_new[outof] = slice(0, k_old.shape[outof])
        kernel[tuple(old_reads_new)] = 0  # no old channel reads a new one yet
        kernel[tuple(slice(0, n) for n in k_old.shape)] = k_old
        bias[:] = 0
        bias[:len(b_old)] = b_old
        new.set_weights([kernel, bias])
    return wide
