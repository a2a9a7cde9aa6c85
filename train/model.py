"""The two architectures and how to count their cost.

`edge` (the default) is built for int8 inference on CPUs (XNNPACK on x86 and ARM): the image enters
as 2x2 patches stacked into 4 channels (no conv ever reads a single channel), then conv -> BatchNorm
(folded away at export) -> ReLU, widening as the map shrinks, and global average pooling into a
10-way classifier instead of a big Dense layer: 43k parameters, 1.8M MACs. Its final Softmax is a
layer of its own, which export cuts off, so every op of the int8 TFLite is XNNPACK-delegated.
`baseline` is the classic Keras MNIST CNN most tutorials train, kept so users see what the design buys.

    >>> import keras
    >>> from train.model import build_model, count_macs, custom_objects
    >>> m = build_model("edge"); m.count_params(), count_macs(m)
    (43402, 1760896)
    >>> keras.models.load_model("models/model.keras", custom_objects=custom_objects()).count_params()
    43402
"""

from __future__ import annotations

ARCHS = ("edge", "baseline")
INPUT_SHAPE = (28, 28, 1)  # NHWC without the batch dimension; pixels / 255, white on black
NUM_CLASSES = 10
DROPOUT = 0.25  # the edge arch's dropout rate, after its second conv and before its classifier


def build_model(arch: str = "edge", dropout: float = DROPOUT):
    """A fresh, uncompiled Keras model; its output is softmax probabilities over the 10 digits
    (the edge arch's exported files output the logits before it: see `logits_model`). `dropout`:
    the edge arch's dropout rate (after its second conv and before its classifier)."""
    import keras
    from keras import layers

    if arch == "baseline":
        return keras.Sequential([
            keras.Input(INPUT_SHAPE, name="image"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(NUM_CLASSES, activation="softmax", name="probs"),
        ], name="baseline")
    if arch != "edge":
        raise ValueError(f"unknown arch {arch!r}; choose from {ARCHS}")

    def block(x, filters):
        x = layers.Conv2D(filters, 3, padding="valid", use_bias=False)(x)  # BN supplies the bias
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    # The image enters as 2x2 patches stacked into channels (14x14x4, no MACs): an int8 conv over a
    # single input channel is the slowest int8 op XNNPACK has (a lone 3x3 1->8 conv on 28x28 took
    # 3.3x its fp32 twin on an AMD EPYC with AVX2, ~7x on a Xeon with AVX-512), while the 3x3 conv on
    # the patches still sees every pixel (a 6x6 stride-2 receptive field). Widths grow as the map
    # shrinks; no padding (a border of zeros carries nothing in MNIST). The last op is a separate
    # Softmax so export can cut it off: an int8 softmax is not XNNPACK-delegated, so the exported
    # files output logits and every op is delegated.
    inp = keras.Input(INPUT_SHAPE, name="image")
    x = custom_objects()["SpaceToDepth"](2, name="space_to_depth")(inp)  # 14x14x4
    x = block(x, 16)               # 12x12x16
    x = block(x, 32)               # 10x10x32
    x = layers.Dropout(dropout)(x)
    x = block(x, 32)               # 8x8x32
    x = block(x, 32)               # 6x6x32
    x = block(x, 64)               # 4x4x64
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(NUM_CLASSES, name="logits")(x)
    out = layers.Softmax(name="probs")(x)
    return keras.Model(inp, out, name="edge")


def build_augmentation(seed: int, scale: float = 1.0):
    """Training-time augmentation: small shifts, rotations and zoom, their ranges times `scale`.
    Never part of the saved model."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomRotation(0.04 * scale, fill_mode="constant", seed=seed),  # scale 1: about +-15 deg
        layers.RandomZoom(0.1 * scale, fill_mode="constant", seed=seed + 1),
        layers.RandomTranslation(0.1 * scale, 0.1 * scale, fill_mode="constant", seed=seed + 2),  # +-3 px
    ], name="augment")


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers)."""
    from keras import layers

    macs = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            out_h, out_w, out_c = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            in_c = layer.input.shape[-1]
            per_out = kh * kw * (1 if isinstance(layer, layers.DepthwiseConv2D) else in_c)
            macs += out_h * out_w * out_c * per_out
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)


_CUSTOM: dict = {}


def custom_objects() -> dict:
    """The Keras layers this project defines, for `keras.models.load_model(..., custom_objects=...)`.

    Built on first call so importing this module does not import Keras."""
    if _CUSTOM:
        return _CUSTOM
    import keras
    from keras import ops

    class SpaceToDepth(keras.layers.Layer):
        """(N, H, W, C) -> (N, H/b, W/b, b*b*C), each bxb patch's pixels as channels (TF's order).

        Reshape/transpose with a -1 batch: converted, they are three ops XNNPACK runs at any batch
        size. Keras' own Reshape layer reads the batch size at run time (Shape/StridedSlice/Pack in
        TFLite), which XNNPACK does not take, so it would leave the model partly delegated."""

        def __init__(self, block: int = 2, **kwargs):
            super().__init__(**kwargs)
            self.block = block

        def call(self, x):
            b, (h, w, c) = self.block, x.shape[1:]
            x = ops.reshape(x, (-1, h // b, b, w // b, b * c))
            x = ops.transpose(x, (0, 1, 3, 2, 4))
            return ops.reshape(x, (-1, h // b, w // b, b * b * c))

        def compute_output_shape(self, shape):
            b = self.block
            return (shape[0], shape[1] // b, shape[2] // b, shape[3] * b * b)

        def get_config(self):
            return super().get_config() | {"block": self.block}

    _CUSTOM["SpaceToDepth"] = SpaceToDepth
    return _CUSTOM


def check_archive(path, what: str) -> None:
    """UserError, led by `what` (the file, or the flag and file), unless `path` is a zip archive, as
    every .keras file is: for one cut short or of another format Keras says "File not found"."""
    import zipfile

    from edge.errors import UserError

    if not zipfile.is_zipfile(path):
        raise UserError(f"{what}: not a .keras file (a .keras model is a zip archive; this one is cut "
                        "short or of another format)")


def load(path, what: str):
    """A .keras file -> the model (uncompiled), or one UserError line led by `what`."""
    import keras

    from edge.errors import UserError

    check_archive(path, what)
    try:
        return keras.models.load_model(path, compile=False, custom_objects=custom_objects())
    except Exception as e:  # a zip that is not a Keras model, or not one of ours
        why = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:120]
        raise UserError(f"{what}: cannot load it as a Keras model ({why})") from None


def logits_model(model):
    """`model` without a final Softmax layer (the edge arch), else `model` itself: what export converts."""
    import keras
    from keras import layers

    if isinstance(model.layers[-1], layers.Softmax):
        return keras.Model(model.inputs, model.layers[-2].output, name=model.name)
    return model
