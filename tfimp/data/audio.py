"""The keyword-spotting front end: WAV clips to MFCC features.

The defaults are MLPerf Tiny's KWS front end: 1 s clips at 16 kHz, peak-normalized, 30 ms Hann
windows every 20 ms, a 512-point FFT, 40 mel bins between 20 Hz and 4 kHz, log, DCT, the first
10 coefficients: a `(49, 10, 1)` feature per clip.

Example:

    front_end = tfimp.data.audio.MfccConfig()
    features = front_end(waveforms)          # (n, 16000) -> (n, 49, 10, 1)
"""

from __future__ import annotations

import dataclasses
import wave
from pathlib import Path

import numpy as np

__all__ = ["MfccConfig", "fit_clip", "read_wav"]


@dataclasses.dataclass(frozen=True)
class MfccConfig:
    """MFCC front-end settings (MLPerf Tiny KWS by default).

    Args:
        sample_rate: samples per second of the clips.
        clip_ms: clip length; shorter clips are zero-padded at the end, longer ones cut.
        window_ms: STFT window length.
        stride_ms: STFT hop.
        num_mel_bins: mel filters.
        num_coefficients: MFCCs kept per frame.
        lower_hz: lowest mel filter edge.
        upper_hz: highest mel filter edge.
    """

    sample_rate: int = 16000
    clip_ms: int = 1000
    window_ms: float = 30.0
    stride_ms: float = 20.0
    num_mel_bins: int = 40
    num_coefficients: int = 10
    lower_hz: float = 20.0
    upper_hz: float = 4000.0

    def __post_init__(self):
        for name in ("sample_rate", "clip_ms", "window_ms", "stride_ms", "num_mel_bins",
                     "num_coefficients"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
        if self.num_coefficients > self.num_mel_bins:
            raise ValueError(
                "Argument `num_coefficients` must be <= num_mel_bins "
                f"({self.num_mel_bins}). Received: num_coefficients={self.num_coefficients}"
            )
        if not 0 <= self.lower_hz < self.upper_hz <= self.sample_rate / 2:
            raise ValueError(
                "Arguments `lower_hz` < `upper_hz` must lie in [0, sample_rate / 2]. "
                f"Received: lower_hz={self.lower_hz}, upper_hz={self.upper_hz}"
            )
        if self.window_samples > self.clip_samples:
            raise ValueError(
                "Argument `window_ms` must not exceed clip_ms. "
                f"Received: window_ms={self.window_ms}"
            )

    @property
    def clip_samples(self) -> int:
        return int(self.sample_rate * self.clip_ms / 1000)

    @property
    def window_samples(self) -> int:
        return int(self.sample_rate * self.window_ms / 1000)

    @property
    def stride_samples(self) -> int:
        return int(self.sample_rate * self.stride_ms / 1000)

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """Shape of one clip's features: `(frames, coefficients, 1)`."""
        return (self.num_frames, self.num_coefficients, 1)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> MfccConfig:
        return cls(**config)

    def __call__(self, waveforms: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """MFCCs of `(n, clip_samples)` float waveforms, as `(n, frames, coefficients, 1)`."""
        waveforms = np.asarray(waveforms, dtype="float32")
        if waveforms.ndim != 2 or waveforms.shape[1] != self.clip_samples:
            raise ValueError(
                f"Argument `waveforms` must have shape (n, {self.clip_samples}). "
                f"Received: shape={waveforms.shape}; use fit_clip() to pad or cut clips."
            )
        parts = [self._mfcc(waveforms[i : i + batch_size])
                 for i in range(0, len(waveforms), batch_size)]
        out = np.concatenate(parts) if parts else np.zeros((0, self.num_frames,
                                                           self.num_coefficients), "float32")
        return out[..., None]

    def _mfcc(self, waveforms: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        stft = tf.signal.stft(waveforms, self.window_samples, self.stride_samples,
                              window_fn=tf.signal.hann_window)
        spectrogram = tf.abs(stft)
        mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            self.num_mel_bins, spectrogram.shape[-1], self.sample_rate, self.lower_hz,
            self.upper_hz,
        )
        log_mel = tf.math.log(tf.tensordot(spectrogram, mel_matrix, 1) + 1e-6)
        mfccs = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)
        return mfccs[..., : self.num_coefficients].numpy()


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Reads a mono 16-bit PCM WAV file as float32 samples in [-1, 1] and its sample rate."""
    with wave.open(str(path), "rb") as f:
        channels, width, rate = f.getnchannels(), f.getsampwidth(), f.getframerate()
        frames = f.readframes(f.getnframes())
    if width != 2 or channels != 1:
        raise ValueError(
            f"WAV file {path} must be mono 16-bit PCM (as Speech Commands is). "
            f"Received: channels={channels}, sample width={8 * width} bits"
        )
    return np.frombuffer(frames, "<i2").astype("float32") / 32768.0, rate


def fit_clip(samples: np.ndarray, length: int) -> np.ndarray:
    """Peak-normalizes a clip and zero-pads or cuts it to `length` samples."""
    samples = np.asarray(samples, dtype="float32")[:length]
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 0:
        samples = samples / peak
    return np.pad(samples, (0, length - len(samples)))
