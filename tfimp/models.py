"""Reference architectures of the pruning literature and of MLPerf Tiny, as Keras 3 builders.

Every builder returns an uncompiled functional `keras.Model` made of standard Keras layers (plus
`PositionEmbedding`, which tfimp can prune), ending in a classifier with `classifier_activation`
("softmax" by default, as in MLPerf Tiny's references; None gives logits).

Example:

    model = tfimp.models.get("resnet8")           # or tfimp.models.resnet8(num_classes=10)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import layers as L

from tfimp._util.validate import fail

__all__ = [
    "MODELS",
    "PositionEmbedding",
    "ds_cnn",
    "get",
    "lenet5",
    "lenet_300_100",
    "mnist1d_cnn",
    "mobilenet_v1",
    "resnet8",
    "resnet20",
    "transformer_classifier",
]


def _check_shape(value: Sequence[int], rank: int | None = None, name: str = "input_shape") -> tuple:
    ok = isinstance(value, (tuple, list)) and all(isinstance(d, int) and d > 0 for d in value)
    if not ok or (rank is not None and len(value) != rank):
        want = f"a tuple of {rank} positive integers" if rank else "a tuple of positive integers"
        raise ValueError(f"Argument `{name}` must be {want}. Received: {name}={value!r}")
    return tuple(value)


def _check_positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )
    return value


def _classifier(x, num_classes: int, activation: str | None, name: str = "classifier"):
    _check_positive("num_classes", num_classes, 2)
    return L.Dense(num_classes, activation=activation, name=name)(x)


def lenet_300_100(
    input_shape: Sequence[int] = (784,),
    num_classes: int = 10,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """LeNet-300-100: a fully connected 784-300-100-10 network (266,610 parameters on MNIST).

    Reference: LeCun et al., "Gradient-based learning applied to document recognition" (1998);
    the IMP benchmark of Han et al., "Learning both Weights and Connections for Efficient Neural
    Networks" (NeurIPS 2015) and Frankle & Carbin, "The Lottery Ticket Hypothesis" (ICLR 2019).

    Args:
        input_shape: shape of one sample; images are flattened first.
        num_classes: number of classes.
        classifier_activation: activation of the last layer; None returns logits.
    """
    inputs = keras.Input(_check_shape(input_shape))
    x = L.Flatten()(inputs) if len(input_shape) > 1 else inputs
    x = L.Dense(300, activation="relu", name="fc1")(x)
    x = L.Dense(100, activation="relu", name="fc2")(x)
    outputs = _classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="lenet_300_100")


def lenet5(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """The convolutional LeNet-5 of the pruning papers (431,080 parameters on MNIST).

    conv 20 5x5, max-pool 2, conv 50 5x5, max-pool 2, fc 500 (ReLU), fc 10. The convolutions
    have no activation, as in Caffe's LeNet example that Han et al. pruned.

    Reference: Han et al., "Learning both Weights and Connections for Efficient Neural
    Networks" (NeurIPS 2015), Table 1 ("LeNet-5", 431K weights).

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        classifier_activation: activation of the last layer; None returns logits.
    """
    inputs = keras.Input(_check_shape(input_shape, 3))
    x = L.Conv2D(20, 5, name="conv1")(inputs)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(50, 5, name="conv2")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dense(500, activation="relu", name="fc1")(x)
    outputs = _classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="lenet5")


def mnist1d_cnn(
    input_shape: Sequence[int] = (40, 1),
    num_classes: int = 10,
    filters: int = 32,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """A small 1-D CNN for MNIST-1D (23,306 parameters at 32 filters).

    Three convolutions of `filters` channels, kernel 5, stride 1, "same" padding and ReLU,
    then a linear classifier on the flattened features. It is a wider variant of the CNN of
    Greydanus & Kobak (25 channels, strides of 2, 5,210 parameters, about 94% test accuracy):
    keeping every position lifts it to about 97% on the standard split, and leaves IMP more
    weights to remove.

    Reference: Greydanus & Kobak, "Scaling Down Deep Learning with MNIST-1D" (ICML 2024).

    Args:
        input_shape: `(length, channels)`; MNIST-1D signals are `(40, 1)`.
        num_classes: number of classes.
        filters: channels of each convolution.
        classifier_activation: activation of the last layer; None returns logits.
    """
    inputs = keras.Input(_check_shape(input_shape, 2))
    _check_positive("filters", filters)
    x = inputs
    for i in range(1, 4):
        x = L.Conv1D(filters, 5, padding="same", activation="relu", name=f"conv{i}")(x)
    x = L.Flatten()(x)
    outputs = _classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="mnist1d_cnn")


def _conv_bn(x, filters, kernel, strides=1, relu=True, weight_decay=0.0, use_bias=True, name=None):
    x = L.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(weight_decay) if weight_decay else None,
        name=name,
    )(x)
    x = L.BatchNormalization()(x)
    return L.ReLU()(x) if relu else x


def _residual(x, filters, strides, weight_decay, use_bias, shortcut_bn):
    """Two 3x3 conv-BN layers plus a shortcut (a 1x1 projection when the shape changes)."""
    y = _conv_bn(x, filters, 3, strides, True, weight_decay, use_bias)
    y = _conv_bn(y, filters, 3, 1, False, weight_decay, use_bias)
    if strides != 1 or x.shape[-1] != filters:
        x = L.Conv2D(
            filters,
            1,
            strides=strides,
            use_bias=use_bias,
            kernel_initializer="he_normal",
            kernel_regularizer=keras.regularizers.L2(weight_decay) if weight_decay else None,
        )(x)
        if shortcut_bn:
            x = L.BatchNormalization()(x)
    return L.ReLU()(L.Add()([x, y]))


def resnet8(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    filters: int = 16,
    weight_decay: float = 1e-4,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """ResNet-8, the MLPerf Tiny image-classification reference (78,666 parameters on CIFAR-10).

    A 3x3 stem and three residual stacks of `filters`, 2x and 4x `filters` channels (the last
    two downsample by 2 with a 1x1 convolution on the shortcut), average pooling, softmax.

    Reference: Banbury et al., "MLPerf Tiny Benchmark" (NeurIPS Datasets and Benchmarks 2021);
    mlcommons/tiny `benchmark/training/image_classification/keras_model.py`
    (`resnet_v1_eembc`, 16 filters).

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        filters: channels of the first stack.
        weight_decay: L2 factor on the convolution kernels (0 disables it).
        classifier_activation: activation of the last layer; None returns logits.
    """
    _check_positive("filters", filters)
    inputs = keras.Input(_check_shape(input_shape, 3))
    x = _conv_bn(inputs, filters, 3, weight_decay=weight_decay)
    for stage, strides in enumerate((1, 2, 2)):
        x = _residual(x, filters * 2**stage, strides, weight_decay, True, shortcut_bn=False)
    x = L.AveragePooling2D(pool_size=min(x.shape[1:3]))(x)
    x = L.Flatten()(x)
    outputs = _classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="resnet8")


def resnet20(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    width: int = 16,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """CIFAR ResNet-20 (272,474 trainable parameters; "0.27M" in He et al.).

    A 3x3 stem, three segments of three residual blocks with `width`, 2x and 4x `width`
    channels, bias-free convolutions with batch normalization, 1x1 projection shortcuts where the
    shape changes, global average pooling and a dense classifier. Weight decay belongs to the
    optimizer, as in open_lth.

    Reference: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), Sec. 4.2;
    facebookresearch/open_lth `models/cifar_resnet.py` (`cifar_resnet_20`).

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        width: channels of the first segment.
        classifier_activation: activation of the last layer; None returns logits.
    """
    _check_positive("width", width)
    inputs = keras.Input(_check_shape(input_shape, 3))
    x = _conv_bn(inputs, width, 3, use_bias=False)
    for segment in range(3):
        for block in range(3):
            strides = 2 if segment > 0 and block == 0 else 1
            x = _residual(x, width * 2**segment, strides, 0.0, False, shortcut_bn=True)
    x = L.GlobalAveragePooling2D()(x)
    outputs = _classifier(x, num_classes, classifier_activation, name="fc")
    return keras.Model(inputs, outputs, name="resnet20")


def ds_cnn(
    input_shape: Sequence[int] = (49, 10, 1),
    num_classes: int = 12,
    filters: int = 64,
    weight_decay: float = 1e-4,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """DS-CNN, the MLPerf Tiny keyword-spotting reference (24,908 parameters at 49x10x1).

    A 10x4 stride-2 convolution, four depthwise-separable blocks (3x3 depthwise, 1x1 pointwise,
    each with batch normalization and ReLU), dropout, average pooling and a dense classifier.
    As in the reference, weight decay applies to the regular convolutions only.

    Reference: Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers" (2017);
    mlcommons/tiny `benchmark/training/keyword_spotting/keras_model.py` (`ds_cnn`).

    Args:
        input_shape: `(frames, coefficients, 1)` of the MFCC features.
        num_classes: number of classes (10 words + silence + unknown).
        filters: channels of every layer.
        weight_decay: L2 factor on the convolution kernels (0 disables it).
        classifier_activation: activation of the last layer; None returns logits.
    """
    _check_positive("filters", filters)
    shape = _check_shape(input_shape, 3)
    inputs = keras.Input(shape)
    x = _conv_bn(inputs, filters, (10, 4), 2, weight_decay=weight_decay)
    x = L.Dropout(0.2)(x)
    for _ in range(4):
        x = L.DepthwiseConv2D(3, padding="same")(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        x = _conv_bn(x, filters, 1, weight_decay=weight_decay)
    x = L.Dropout(0.4)(x)
    x = L.AveragePooling2D(pool_size=(max(shape[0] // 2, 1), max(shape[1] // 2, 1)))(x)
    x = L.Flatten()(x)
    outputs = _classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="ds_cnn")


# MobileNetV1's depthwise-separable blocks at alpha=1: (stride, pointwise channels).
_MOBILENET_V1_BLOCKS = (
    [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)]
    + [(1, 512)] * 5
    + [(2, 1024), (1, 1024)]
)


def _padded_3x3(x, layer):
    # Explicit 1-pixel padding + "valid": the symmetric padding XNNPACK's sparse path accepts
    # (TensorFlow's "same" pads stride-2 layers on the bottom/right only).
    return layer(L.ZeroPadding2D(1)(x))


def mobilenet_v1(
    alpha: float = 0.25,
    input_shape: Sequence[int] = (96, 96, 3),
    num_classes: int = 2,
    weight_decay: float = 1e-4,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """MobileNetV1, the MLPerf Tiny visual-wake-words reference (221,794 parameters at alpha
    0.25, 96x96x3, 2 classes).

    Laid out for XNNPACK's sparse (NCHW) inference: the stem is an explicit 1-pixel
    ZeroPadding2D and a 3x3 stride-2 "valid" convolution on 3 channels; every 3x3 depthwise
    convolution is padded the same way; the blocks hold only depthwise 3x3 and 1x1
    convolutions with batch normalization and ReLU; the features end in a spatial mean
    (GlobalAveragePooling2D) before the classifier. Convolutions keep their biases and weight
    decay skips the depthwise kernels, as in the reference.

    Reference: Howard et al., "MobileNets" (2017); Banbury et al., "MLPerf Tiny Benchmark"
    (2021); mlcommons/tiny `benchmark/training/visual_wake_words/vww_model.py`.

    Args:
        alpha: width multiplier; layer widths are `int(channels * alpha)`.
        input_shape: `(height, width, 3)`.
        num_classes: number of classes (person / no person).
        weight_decay: L2 factor on the regular convolution kernels (0 disables it).
        classifier_activation: activation of the last layer; None returns logits.
    """
    if not isinstance(alpha, (int, float)) or not 0 < alpha <= 4 or int(32 * alpha) < 1:
        raise ValueError(f"Argument `alpha` must be in [1/32, 4]. Received: alpha={alpha!r}")
    shape = _check_shape(input_shape, 3)
    if shape[-1] != 3:
        raise ValueError(
            "Argument `input_shape` must have 3 channels (XNNPACK's sparse path starts with a "
            f"3-channel convolution). Received: input_shape={input_shape!r}"
        )
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input(shape)
    stem = L.Conv2D(int(32 * alpha), 3, strides=2, padding="valid", kernel_initializer="he_normal",
                    kernel_regularizer=reg, name="stem_conv")
    x = L.ReLU()(L.BatchNormalization()(_padded_3x3(inputs, stem)))
    for i, (strides, channels) in enumerate(_MOBILENET_V1_BLOCKS, start=1):
        dw = L.DepthwiseConv2D(3, strides=strides, padding="valid", name=f"dw{i}")
        x = L.ReLU()(L.BatchNormalization()(_padded_3x3(x, dw)))
        pw = L.Conv2D(int(channels * alpha), 1, kernel_initializer="he_normal",
                      kernel_regularizer=reg, name=f"pw{i}")
        x = L.ReLU()(L.BatchNormalization()(pw(x)))
    x = L.GlobalAveragePooling2D()(x)
    outputs = _classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name=f"mobilenet_v1_{alpha:g}")


@keras.saving.register_keras_serializable(package="tfimp")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a `(batch, sequence_length, dim)` input.

    Args:
        sequence_length: number of positions.
    """

    def __init__(self, sequence_length: int, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = _check_positive("sequence_length", sequence_length)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.sequence_length, input_shape[-1]),
            initializer="glorot_uniform",
            name="embeddings",
        )

    def call(self, inputs):
        return inputs + keras.ops.cast(self.embeddings, inputs.dtype)

    def get_prunable_weights(self) -> list:
        return [self.embeddings]

    def get_config(self) -> dict:
        return {**super().get_config(), "sequence_length": self.sequence_length}


def transformer_classifier(
    vocab_size: int = 20000,
    seq_len: int = 200,
    embed_dim: int = 32,
    num_heads: int = 2,
    ff_dim: int = 32,
    num_classes: int = 2,
    dropout: float = 0.1,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """A one-block Transformer text classifier: token + position embedding, self-attention,
    feed-forward, average pooling over the sequence, dense head.

    Reference: Vaswani et al., "Attention Is All You Need" (2017); the Keras example "Text
    classification with Transformer" (A. Nandan, keras.io, 2020), same sizes by default.

    Args:
        vocab_size: number of token ids (0 is padding).
        seq_len: length of the (padded) token sequences.
        embed_dim: width of the embeddings and of each attention head.
        num_heads: attention heads.
        ff_dim: hidden width of the feed-forward layer.
        num_classes: number of classes.
        dropout: dropout rate after attention, feed-forward and pooling.
        classifier_activation: activation of the last layer; None returns logits.
    """
    for name, value in (("vocab_size", vocab_size), ("seq_len", seq_len),
                        ("embed_dim", embed_dim), ("num_heads", num_heads), ("ff_dim", ff_dim)):
        _check_positive(name, value)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"Argument `dropout` must be in [0, 1). Received: dropout={dropout!r}")
    inputs = keras.Input((seq_len,), dtype="int32")
    x = L.Embedding(vocab_size, embed_dim, name="token_embedding")(inputs)
    x = PositionEmbedding(seq_len, name="position_embedding")(x)
    attn = L.MultiHeadAttention(num_heads, key_dim=embed_dim, name="attention")(x, x)
    x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dropout(dropout)(attn)]))
    ff = L.Dense(ff_dim, activation="relu", name="ff1")(x)
    ff = L.Dense(embed_dim, name="ff2")(ff)
    x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dropout(dropout)(ff)]))
    x = L.Dropout(dropout)(L.GlobalAveragePooling1D()(x))
    x = L.Dropout(dropout)(L.Dense(20, activation="relu", name="head")(x))
    outputs = _classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, outputs, name="transformer_classifier")


MODELS: dict[str, Callable[..., keras.Model]] = {
    "lenet_300_100": lenet_300_100,
    "lenet5": lenet5,
    "mnist1d_cnn": mnist1d_cnn,
    "resnet8": resnet8,
    "resnet20": resnet20,
    "ds_cnn": ds_cnn,
    "mobilenet_v1": mobilenet_v1,
    "transformer_classifier": transformer_classifier,
}


def get(name: str, **kwargs) -> keras.Model:
    """Builds the registered architecture `name` with the builder's keyword arguments.

    Example:

        model = tfimp.models.get("mobilenet_v1", alpha=0.25, num_classes=2)
    """
    if name not in MODELS:
        raise ValueError(
            f"Argument `name` must be one of {sorted(MODELS)}. Received: name={name!r}"
        )
    check_kwargs(name, kwargs)
    return MODELS[name](**kwargs)


def check_kwargs(name: str, kwargs: dict, argument: str = "kwargs") -> None:
    """Raises unless every key of `kwargs` is an argument of the builder `name`."""
    import inspect

    params = inspect.signature(MODELS[name]).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        fail(argument, dict(kwargs), f"arguments of the builder {name!r} "
             f"({', '.join(params)}); unknown: {', '.join(unknown)}")
