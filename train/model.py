"""The two architectures and how to count their cost.

`edge` (the default) is built for int8 inference: conv -> BatchNorm (folded away at export) -> ReLU,
few channels at full resolution, more once the map is small, and global average pooling into a 10-way
classifier instead of a big Dense layer: 35k parameters, 1.5M MACs.
`baseline` is the classic Keras MNIST CNN most tutorials train, kept so users see what the design buys.

    >>> from train.model import build_model, count_macs
    >>> m = build_model("edge"); m.count_params(), count_macs(m)
"""

from __future__ import annotations

ARCHS = ("edge", "baseline")
INPUT_SHAPE = (28, 28, 1)  # NHWC without the batch dimension; pixels / 255, white on black
NUM_CLASSES = 10


def build_model(arch: str = "edge"):
    """A fresh, uncompiled Keras model; its output is softmax probabilities over the 10 digits."""
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

    # Fine strokes matter for digits, so the first conv sees full resolution, but with only 8
    # channels (a 1-channel input makes a wide first conv slow on a CPU); the later ones widen
    # where the map is small and a MAC is cheap. No padding: a border of zeros carries nothing in
    # MNIST. A stride-2 first conv was tried and lost ~0.3 pp; pooling after it costs nothing.
    inp = keras.Input(INPUT_SHAPE, name="image")
    x = block(inp, 8)              # 26x26x8
    x = layers.MaxPooling2D(2)(x)  # 13x13x8
    x = block(x, 16)               # 11x11x16
    x = layers.Dropout(0.25)(x)
    x = block(x, 32)               # 9x9x32
    x = block(x, 32)               # 7x7x32
    x = block(x, 64)               # 5x5x64
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="edge")


def build_augmentation(seed: int):
    """Training-time augmentation: small shifts, rotations and zoom. Never part of the saved model."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomRotation(0.04, fill_mode="constant", seed=seed),         # about +-15 degrees
        layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 1),
        layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed + 2),  # about +-3 px
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
