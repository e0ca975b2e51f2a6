"""Speech Commands as MFCC features (MLPerf Tiny keyword spotting)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfimp.data.audio import MfccConfig, fit_clip, read_wav
from tfimp.data.base import KWS_WORDS, Dataset
from tfimp.data.readers import _require

# Speech Commands (keyword spotting) from a folder.


def _speaker_bucket(relative: str) -> int:
    """Which percent bucket a clip falls into, by speaker, so a speaker stays in one split."""
    speaker = re.sub(r"_nohash_.*$", "", Path(relative).name)
    return int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 100


def _kws_split_of(relative: str, testing: set | None, validation: set | None) -> str:
    if testing is not None:
        return "test" if relative in testing else (
            "validation" if validation and relative in validation else "train")
    bucket = _speaker_bucket(relative)
    return "validation" if bucket < 10 else "test" if bucket < 20 else "train"


def _read_list(path: Path) -> set | None:
    return set(path.read_text().split()) if path.exists() else None


def _kws_files(root: Path, words: Sequence[str]) -> dict[str, list[tuple[Path, int]]]:
    """Clips per split with labels: word index, or len(words) + 1 for an unknown word."""
    testing = _read_list(root / "testing_list.txt")
    validation = _read_list(root / "validation_list.txt")
    splits: dict[str, list] = {"train": [], "test": [], "validation": []}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith("_"):
            continue
        label = words.index(folder.name) if folder.name in words else len(words) + 1
        for wav in sorted(folder.glob("*.wav")):
            relative = f"{folder.name}/{wav.name}"
            splits[_kws_split_of(relative, testing, validation)].append((wav, label))
    return splits


def _kws_split(files, background, words, config, fractions, rng) -> tuple:
    silence_fraction, unknown_fraction = fractions
    known = [f for f in files if f[1] < len(words)]
    unknown = [f for f in files if f[1] == len(words) + 1]
    n_unknown = min(len(unknown), int(round(unknown_fraction * len(known))))
    picked = known + [unknown[i] for i in rng.choice(len(unknown), n_unknown, replace=False)]
    n = config.clip_samples
    clips = [fit_clip(_read_rate(path, config.sample_rate), n) for path, _ in picked]
    n_silence = int(round(silence_fraction * len(known)))
    clips += [_silence_clip(background, n, rng) for _ in range(n_silence)]
    labels = [label for _, label in picked] + [len(words)] * n_silence
    order = rng.permutation(len(clips))
    waves = np.stack(clips) if clips else np.zeros((0, n), "float32")
    return config(waves[order]), np.asarray(labels, "int64")[order]


def _read_rate(path: Path, sample_rate: int) -> np.ndarray:
    samples, rate = read_wav(path)
    if rate != sample_rate:
        raise ValueError(f"{path} is sampled at {rate} Hz; the front end expects {sample_rate} Hz.")
    return samples


def _silence_clip(background: list[np.ndarray], n: int, rng) -> np.ndarray:
    """Silence: a random stretch of background noise at a random volume (zeros without noise)."""
    if not background:
        return np.zeros(n, "float32")
    noise = background[rng.integers(len(background))]
    start = rng.integers(0, max(len(noise) - n, 0) + 1)
    clip = np.pad(noise[start : start + n], (0, max(n - len(noise), 0)))
    return (clip * rng.uniform(0.0, 1.0)).astype("float32")


def speech_commands(
    path: str | Path,
    words: Sequence[str] = KWS_WORDS,
    silence_fraction: float = 0.1,
    unknown_fraction: float = 0.1,
    front_end: MfccConfig | None = None,
    seed: int = 0,
) -> Dataset:
    """Speech Commands from its folder, as MFCC features (MLPerf Tiny KWS: `(49, 10, 1)`).

    The folder holds one sub-folder of 16 kHz WAV clips per word, optionally
    `_background_noise_/` and the `testing_list.txt` / `validation_list.txt` of the official
    release (without them, clips are split by a hash of the speaker: 10% validation, 10% test).
    Labels: the index of the word in `words`, then silence, then unknown (any other word). Each
    split gets `silence_fraction` and `unknown_fraction` times its number of keyword clips of
    silence (background noise) and unknown-word clips. The validation clips are left out.

    Args:
        path: the dataset folder.
        words: the keywords, in label order.
        silence_fraction: silence clips per keyword clip.
        unknown_fraction: unknown-word clips per keyword clip.
        front_end: the MFCC settings; MLPerf Tiny's by default.
        seed: seed of the silence/unknown sampling and of the shuffling.
    """
    root = _require(path, "a Speech Commands folder (one folder of WAV clips per word)")
    for name, value in (("silence_fraction", silence_fraction),
                        ("unknown_fraction", unknown_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"Argument `{name}` must be in [0, 1]. Received: {name}={value!r}")
    words = list(words)
    missing = [w for w in words if not (root / w).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root} has no folder for the words {missing}.")
    config = front_end or MfccConfig()
    rng = np.random.default_rng(seed)
    background = [_read_rate(p, config.sample_rate)
                  for p in sorted((root / "_background_noise_").glob("*.wav"))]
    splits = _kws_files(root, words)
    fractions = (silence_fraction, unknown_fraction)
    x_train, y_train = _kws_split(splits["train"], background, words, config, fractions, rng)
    x_test, y_test = _kws_split(splits["test"], background, words, config, fractions, rng)
    return Dataset(x_train, y_train, x_test, y_test, {
        "name": "speech_commands", "source": str(root), "synthetic": False,
        "class_names": words + ["_silence_", "_unknown_"], "front_end": config.get_config(),
    })


