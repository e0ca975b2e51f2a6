"""Datasets: real loaders plus offline defaults that need no network.

`get(name)` tries the real data and falls back to an offline default when it can't be had:

    ds = tfimp.data.get("cifar10")               # real CIFAR-10, or synthetic 32x32x3 offline
    ds = tfimp.data.get("mnist", offline=True)   # scikit-learn digits resized to 28x28
    ds = tfimp.data.get("speech_commands", path="data/speech_commands_v0.02")

Modules: `base` (the `Dataset` value, the bundled digits), `readers` (safe file readers),
`keras_sets` (MNIST, Fashion-MNIST, CIFAR-10, IMDB), `speech` and `audio` (Speech Commands and
its MFCC front end), `vww` (Visual Wake Words), `synthetic` (generated stand-ins), `registry`.
"""

from tfimp.data.base import KWS_WORDS, SYNTHETIC_NOTE, Dataset, digits
from tfimp.data.keras_sets import cifar10, fashion_mnist, imdb, mnist
from tfimp.data.registry import DATASETS, DatasetSpec, get
from tfimp.data.speech import speech_commands
from tfimp.data.synthetic import synthetic_images, synthetic_kws, synthetic_text
from tfimp.data.vww import visual_wake_words

__all__ = [
    "DATASETS", "Dataset", "DatasetSpec", "KWS_WORDS", "SYNTHETIC_NOTE", "cifar10", "digits",
    "fashion_mnist", "get", "imdb", "mnist", "speech_commands", "synthetic_images",
    "synthetic_kws", "synthetic_text", "visual_wake_words",
]
