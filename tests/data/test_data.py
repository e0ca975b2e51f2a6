import gzip
import io
import logging
import os
import pickle
import struct
import sys
import tarfile
import wave
import zipfile

import keras
import numpy as np
import pytest
import scipy.fft
import tensorflow as tf

from tfimp import data
from tfimp.data import keras_sets, readers
from tfimp.data.audio import MfccConfig, fit_clip, read_wav

RNG = np.random.default_rng(0)


def _fake_download(monkeypatch, module: str, result):
    """Replaces only the network fetch of a keras.datasets loader, so Keras' own parsing runs
    on our small file (each loader module imports `get_file` by name)."""
    calls = []

    def get_file(fname=None, origin=None, **kwargs):
        calls.append(fname)
        if isinstance(result, Exception):
            raise result
        return str(result(fname) if callable(result) else result)

    monkeypatch.setattr(f"keras.src.datasets.{module}.get_file", get_file)
    return calls


# --- MNIST / Fashion-MNIST ---------------------------------------------------------------------


@pytest.fixture
def mnist_npz(tmp_path):
    x_train = RNG.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    x_test = RNG.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=np.arange(6, dtype=np.uint8), x_test=x_test,
             y_test=np.array([9, 8, 7, 6], np.uint8))
    return path, x_train, x_test


def test_mnist_reads_a_keras_npz(mnist_npz):
    path, x_train, x_test = mnist_npz
    ds = data.mnist(path)
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train[..., 0], x_train / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, [9, 8, 7, 6])
    assert ds.y_train.dtype == np.int64 and ds.info["synthetic"] is False
    assert data.mnist(path, flatten=True).x_test.shape == (4, 784)


def test_mnist_download_route_matches_the_file_route(monkeypatch, mnist_npz):
    path = mnist_npz[0]
    _fake_download(monkeypatch, "mnist", path)
    downloaded, local = data.mnist(), data.mnist(path)
    assert downloaded.info["source"] == "keras.datasets.mnist"
    for a, b in zip(_arrays(downloaded), _arrays(local)):
        np.testing.assert_array_equal(a, b)


def _arrays(ds):
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_the_idx_files_and_matches_keras(tmp_path, monkeypatch):
    images = RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    for split in ("train", "t10k"):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
    ds = data.fashion_mnist(tmp_path)
    np.testing.assert_allclose(ds.x_test[..., 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, labels)
    calls = _fake_download(monkeypatch, "fashion_mnist", lambda fname: tmp_path / fname)
    for a, b in zip(_arrays(data.fashion_mnist()), _arrays(ds)):
        np.testing.assert_array_equal(a, b)
    assert len(calls) == 4


def test_idx_reader_rejects_other_files(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(ValueError, match="IDX"):
        data.fashion_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="Argument `path`"):
        data.fashion_mnist(tmp_path / "nowhere")


# --- CIFAR-10 ----------------------------------------------------------------------------------


def _cifar_images(n, offset):
    # Channel c of image i is constant (offset + 10 * i + c), so the layout is checkable.
    planes = np.zeros((n, 3, 32, 32), np.uint8)
    for i in range(n):
        for c in range(3):
            planes[i, c] = offset + 10 * i + c
    return planes


def _write_cifar(folder, n=2):
    folder.mkdir(parents=True)
    for name, offset in [(f"data_batch_{i}", 20 * i) for i in range(1, 6)] + [("test_batch", 150)]:
        batch = {b"batch_label": name.encode(), b"labels": [offset % 10 + i for i in range(n)],
                 b"data": _cifar_images(n, offset).reshape(n, 3072)}
        # Keras' own reader refuses the `_codecs.encode` that protocol 2 needs for bytes under
        # Python 3; the Python 2 originals carry raw strings, which decode like protocol 3.
        (folder / name).write_bytes(pickle.dumps(batch, protocol=3))


def test_cifar10_reads_python_batches_from_folder_parent_and_archive(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    ds = data.cifar10(tmp_path / "cifar-10-batches-py")
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_test.shape == (2, 32, 32, 3)
    assert ds.x_train[1, 5, 7].tolist() == pytest.approx([30 / 255, 31 / 255, 32 / 255])
    assert ds.x_train[9, 0, 0, 0] == pytest.approx((100 + 10) / 255)
    np.testing.assert_array_equal(ds.y_test, [0, 1])
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    # (Keras' own CIFAR reader assumes 10,000 images per batch, so the download route is not
    # compared on these small batches.)
    for other in (data.cifar10(tmp_path), data.cifar10(archive)):
        for a, b in zip(_arrays(other), _arrays(ds)):
            np.testing.assert_array_equal(a, b)


def test_cifar10_batches_also_read_from_protocol_2_pickles():
    batch = {b"labels": [7], b"data": _cifar_images(1, 0).reshape(1, 3072)}
    images, labels = keras_sets._read_cifar_batch(pickle.dumps(batch, protocol=2))
    assert images.shape == (1, 32, 32, 3) and images[0, 0, 0].tolist() == [0, 1, 2]
    assert labels.tolist() == [7]


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="Refusing"):
        data.cifar10(folder)


# --- IMDB --------------------------------------------------------------------------------------


@pytest.fixture
def imdb_npz(tmp_path):
    def reviews(n):
        seqs = np.empty(n, dtype=object)
        for i in range(n):
            seqs[i] = [int(w) for w in RNG.integers(1, 12, RNG.integers(2, 9))]
        return seqs

    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=reviews(7), y_train=RNG.integers(0, 2, 7), x_test=reviews(5),
             y_test=RNG.integers(0, 2, 5))
    return path


def test_imdb_file_route_reproduces_keras_imdb_exactly(imdb_npz, monkeypatch):
    ds = data.imdb(imdb_npz, vocab_size=10, seq_len=6)
    assert ds.x_train.shape == (7, 6) and ds.x_train.dtype == np.int32
    assert ds.x_train.max() < 10 and ds.info["vocab_size"] == 10
    _fake_download(monkeypatch, "imdb", imdb_npz)
    (kx, ky), (tx, ty) = keras.datasets.imdb.load_data(num_words=10)
    np.testing.assert_array_equal(ds.x_train, keras.utils.pad_sequences(kx, maxlen=6))
    np.testing.assert_array_equal(ds.x_test, keras.utils.pad_sequences(tx, maxlen=6))
    np.testing.assert_array_equal(ds.y_train, ky)
    np.testing.assert_array_equal(ds.y_test, ty)
    for a, b in zip(_arrays(data.imdb(vocab_size=10, seq_len=6)), _arrays(ds)):
        np.testing.assert_array_equal(a, b)
    long = data.imdb(imdb_npz, vocab_size=100, seq_len=12)
    starts = [row[row > 0][0] for row in long.x_train]
    assert starts == [1] * 7 and long.x_train.min() == 0  # start token, front padding


# --- Speech Commands and the MFCC front end ----------------------------------------------------


def _write_wav(path, samples, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def _tone(freq, seconds=1.0, rate=16000, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_commands")
    testing, validation = [], []
    for w, word in enumerate([*data.KWS_WORDS, "cat"]):
        for k in range(3):
            name = f"{word}/spk{w}{k}_nohash_{k}.wav"
            _write_wav(root / name, _tone(200 + 150 * w + 20 * k, seconds=0.8 + 0.1 * k))
            (testing if k == 1 else validation if k == 2 else []).append(name)
    _write_wav(root / "_background_noise_" / "noise.wav", RNG.normal(0, 0.3, 32000))
    (root / "testing_list.txt").write_text("\n".join(testing))
    (root / "validation_list.txt").write_text("\n".join(validation))
    return root


def test_speech_commands_builds_the_12_class_mlperf_task(speech_folder):
    ds = data.speech_commands(speech_folder, silence_fraction=0.2, unknown_fraction=0.1)
    assert ds.x_train.shape == (13, 49, 10, 1) and ds.x_test.shape == (13, 49, 10, 1)
    assert ds.num_classes == 12 and ds.info["class_names"][10:] == ["_silence_", "_unknown_"]
    for y in (ds.y_train, ds.y_test):
        np.testing.assert_array_equal(np.bincount(y, minlength=12), [1] * 10 + [2, 1])
    # The "down" training clip (label 0) went through the documented front end.
    samples, _ = read_wav(speech_folder / "down" / "spk00_nohash_0.wav")
    expected = MfccConfig()(fit_clip(samples, 16000)[None])[0]
    np.testing.assert_allclose(ds.x_train[ds.y_train == 0][0], expected, atol=1e-4)
    again = data.speech_commands(speech_folder, silence_fraction=0.2, unknown_fraction=0.1)
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_speech_commands_checks_its_folder(speech_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder for the words"):
        data.speech_commands(speech_folder, words=["yes", "banana"])
    _write_wav(tmp_path / "yes" / "a_nohash_0.wav", _tone(300), rate=8000)
    with pytest.raises(ValueError, match="8000 Hz"):
        data.speech_commands(tmp_path, words=["yes"])
    with pytest.raises(ValueError, match="silence_fraction"):
        data.speech_commands(speech_folder, silence_fraction=2)


def test_mfcc_matches_an_independent_numpy_computation():
    config = MfccConfig()
    assert config.feature_shape == (49, 10, 1)
    clip = fit_clip(_tone(440) + RNG.normal(0, 0.05, 16000), 16000)
    frames = np.lib.stride_tricks.sliding_window_view(clip, 480)[::320]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(480) / 480)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * hann, n=512))
    mel = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 4000.0).numpy()
    log_mel = np.log(magnitude @ mel + 1e-6)
    expected = scipy.fft.dct(log_mel, type=2)[:, :10] / np.sqrt(2 * 40)
    np.testing.assert_allclose(config(clip[None])[0, ..., 0], expected, atol=2e-3)


def test_fit_clip_normalizes_peaks_and_pads():
    loud = fit_clip(_tone(300, seconds=0.5, amplitude=0.9), 16000)
    quiet = fit_clip(_tone(300, seconds=0.5, amplitude=0.1), 16000)
    np.testing.assert_allclose(loud, quiet, atol=1e-6)
    assert loud.shape == (16000,) and np.abs(loud).max() == pytest.approx(1.0)
    assert not loud[8000:].any()
    assert fit_clip(np.zeros(20000), 16000).shape == (16000,)


def test_mfcc_config_round_trips_and_validates():
    config = MfccConfig(num_coefficients=13)
    assert MfccConfig.from_config(config.get_config()) == config
    with pytest.raises(ValueError, match="num_coefficients"):
        MfccConfig(num_coefficients=41)
    with pytest.raises(ValueError, match="upper_hz"):
        MfccConfig(upper_hz=9000)
    with pytest.raises(ValueError, match=r"shape \(n, 16000\)"):
        config(np.zeros((2, 100)))


# --- Visual Wake Words folder ------------------------------------------------------------------


def test_visual_wake_words_reads_person_and_non_person_images(tmp_path):
    for label, cls in enumerate(("non_person", "person")):
        for k in range(3):
            image = np.full((20, 30, 3), 60 + 120 * label, np.uint8)
            (tmp_path / cls).mkdir(exist_ok=True)
            (tmp_path / cls / f"{k}.png").write_bytes(tf.io.encode_png(image).numpy())
    ds = data.visual_wake_words(tmp_path, size=16, test_fraction=0.33)
    assert ds.x_train.shape == (4, 16, 16, 3) and ds.x_test.shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(np.sort(ds.y_test), [0, 1])
    for x, y in zip(ds.x_train, ds.y_train):
        assert x.mean() == pytest.approx((60 + 120 * y) / 255, abs=1e-5)


# --- Generated data ----------------------------------------------------------------------------


def _nearest_mean_accuracy(ds):
    x_train = ds.x_train.reshape(len(ds.x_train), -1).astype("float64")
    x_test = ds.x_test.reshape(len(ds.x_test), -1).astype("float64")
    means = np.stack([x_train[ds.y_train == c].mean(0) for c in range(ds.num_classes)])
    guess = np.argmin(((x_test[:, None] - means[None]) ** 2).sum(-1), axis=1)
    return np.mean(guess == ds.y_test)


def _bag_of_words(ds, vocab):
    def bag(x):
        out = np.zeros((len(x), vocab))
        for i, row in enumerate(x):
            np.add.at(out[i], row[row > 1], 1.0)
        return out

    return data.Dataset(bag(ds.x_train), ds.y_train, bag(ds.x_test), ds.y_test, ds.info)


@pytest.mark.parametrize("make, shape, classes", [
    (lambda seed: data.synthetic_images((32, 32, 3), 10, num_train=200, num_test=50, seed=seed),
     (32, 32, 3), 10),
    (lambda seed: data.DATASETS["vww"].offline(num_train=40, num_test=20, seed=seed),
     (96, 96, 3), 2),
    (lambda seed: data.synthetic_kws(num_train=240, num_test=60, seed=seed), (49, 10, 1), 12),
])
def test_generated_features_are_labelled_deterministic_and_learnable(make, shape, classes):
    ds = make(0)
    assert ds.input_shape == shape and ds.num_classes == classes
    assert ds.info["synthetic"] is True and ds.info["note"] == data.SYNTHETIC_NOTE
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(make(0).x_train, ds.x_train)
    assert not np.array_equal(make(1).x_train, ds.x_train)
    assert _nearest_mean_accuracy(ds) > 0.9


def test_generated_text_follows_the_imdb_convention_and_is_learnable():
    ds = data.synthetic_text(vocab_size=300, seq_len=40, num_train=200, num_test=100)
    assert ds.x_train.shape == (200, 40) and ds.x_train.dtype == np.int32
    assert ds.x_train.max() < 300 and ds.info["synthetic"] is True
    assert all(row[row > 0][0] == 1 for row in ds.x_train)  # start token after front padding
    np.testing.assert_array_equal(data.synthetic_text(300, 40, num_train=200).x_train, ds.x_train)
    from sklearn.linear_model import LogisticRegression

    bags = _bag_of_words(ds, 300)
    classifier = LogisticRegression(max_iter=500).fit(bags.x_train, bags.y_train)
    assert classifier.score(bags.x_test, bags.y_test) > 0.9


# --- MNIST-1D ----------------------------------------------------------------------------------


def test_mnist1d_is_the_standard_split_generated_offline():
    ds = data.get("mnist1d")  # no download: the real data is generated by its package
    assert ds.x_train.shape == (4000, 40, 1) and ds.x_test.shape == (1000, 40, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == ds.y_test.dtype == np.int64
    assert ds.num_classes == 10 and ds.info["synthetic"] is False and "note" not in ds.info
    # 500 signals per class, shuffled before the split; standardized over the whole set.
    counts = np.bincount(ds.y_train, minlength=10) + np.bincount(ds.y_test, minlength=10)
    np.testing.assert_array_equal(counts, np.full(10, 500))
    assert np.bincount(ds.y_test).min() >= 80
    x = np.concatenate([ds.x_train, ds.x_test])
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1.0) < 1e-4
    # The package's seed 42: the first signal and labels of the standard split.
    np.testing.assert_array_equal(ds.y_train[:10], [2, 6, 4, 5, 6, 6, 6, 0, 3, 1])
    np.testing.assert_allclose(ds.x_train[0, :3, 0], [-0.332006, -0.471910, -0.778697],
                               atol=1e-5)
    assert data.get("mnist1d", offline=True, flatten=True).x_train.shape == (4000, 40)


def test_mnist1d_is_deterministic_cached_and_leaves_global_generators_alone():
    import random

    from tfimp.data import signals

    random.seed(3)
    np.random.seed(3)
    expected = (random.random(), np.random.rand())
    random.seed(3)
    np.random.seed(3)
    other = data.mnist1d(seed=5)  # generated now: the generator seeds numpy's global state
    assert (random.random(), np.random.rand()) == expected
    assert "not the standard" in other.info["note"]
    first = data.mnist1d()
    first.x_train[:] = 0.0  # the caller's copy; the cached arrays stay as generated
    again = data.mnist1d()
    assert np.abs(again.x_train).sum() > 0
    signals._generate.cache_clear()
    fresh = data.mnist1d()
    np.testing.assert_array_equal(fresh.x_train, again.x_train)
    np.testing.assert_array_equal(fresh.y_test, again.y_test)
    assert not np.array_equal(other.y_train, fresh.y_train)


def test_mnist1d_without_its_package_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)  # as if it were not installed
    for load in (lambda: data.mnist1d(seed=11), lambda: data.get("mnist1d", seed=11)):
        with pytest.raises(ImportError, match=r"pip install mnist1d .*tfimp\[mnist1d\]"):
            load()


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": -1}, "Argument `seed` must be an integer >= 0. Received: seed=-1"),
    ({"flatten": "yes"}, "Argument `flatten` must be True or False"),
])
def test_mnist1d_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.mnist1d(**kwargs)


# --- Registry ----------------------------------------------------------------------------------


def test_offline_defaults_of_every_dataset():
    small = {"num_train": 8, "num_test": 4}
    expect = {"digits": ((64,), False), "mnist": ((28, 28, 1), False),
              "fashion_mnist": ((28, 28, 1), False), "cifar10": ((32, 32, 3), True),
              "imdb": ((200,), True), "speech_commands": ((49, 10, 1), True),
              "vww": ((96, 96, 3), True), "mnist1d": ((40, 1), False)}
    assert set(expect) == set(data.DATASETS)
    for name, (shape, synthetic) in expect.items():
        kwargs = small if synthetic else {}
        ds = data.get(name, offline=True, **kwargs)
        assert ds.input_shape == shape and ds.info["synthetic"] is synthetic, name
    assert data.get("mnist", offline=True).info["stands_in_for"] == "mnist"
    assert data.get("imdb", offline=True, vocab_size=100, seq_len=16, num_train=8).x_train.shape \
        == (8, 16)


@pytest.mark.parametrize("error", [Exception("URL fetch failure on x: None -- no network"),
                                   OSError("network unreachable")])
def test_get_falls_back_with_a_warning_when_the_download_fails(monkeypatch, caplog, error):
    _fake_download(monkeypatch, "cifar10", error)
    with caplog.at_level(logging.WARNING, logger="absl"):
        ds = data.get("cifar10", num_train=8, num_test=4)
    assert ds.info["name"] == "synthetic_cifar10" and ds.x_train.shape == (8, 32, 32, 3)
    assert str(error) in ds.info["fallback_reason"]
    assert "offline default" in caplog.text and data.SYNTHETIC_NOTE in caplog.text
    with pytest.raises(type(error)):
        data.get("cifar10", offline=False)


def test_get_uses_real_files_and_does_not_hide_their_errors(mnist_npz, monkeypatch, tmp_path):
    assert data.get("mnist", path=mnist_npz[0]).info["source"] == str(mnist_npz[0])
    with pytest.raises(ValueError, match="Argument `path` must be an existing file"):
        data.get("mnist", path=tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    _fake_download(monkeypatch, "mnist", corrupt)
    with pytest.raises(Exception, match="zip|pickle|load"):
        data.get("mnist")  # a broken download is an error, not a reason to switch data


def test_folder_datasets_without_a_folder(caplog):
    with caplog.at_level(logging.WARNING, logger="absl"):
        ds = data.get("speech_commands", num_train=6, num_test=3)
    assert ds.info["synthetic"] is True and "no `path`" in caplog.text
    with pytest.raises(ValueError, match="pass path=FOLDER"):
        data.get("vww", offline=False)


@pytest.mark.parametrize("call, error, match", [
    (lambda: data.get("svhn"), ValueError, r"one of \['cifar10', 'digits'"),
    (lambda: data.get("mnist", offline="yes"), ValueError, "offline"),
    (lambda: data.get("mnist", offline=True, path="x.npz"), ValueError, "path"),
    (lambda: data.get("mnist", batch=3), TypeError, r"\['batch'\].*valid: \[.*'flatten'"),
    (lambda: data.synthetic_images(num_train=0), ValueError, "num_train"),
    (lambda: data.synthetic_text(vocab_size=5), ValueError, "vocab_size"),
    (lambda: data.imdb("x.npz", seq_len=0), ValueError, "seq_len"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_subset_and_input_shape():
    ds = data.digits()
    small = ds.subset(10, 5)
    assert len(small.x_train) == 10 and len(small.y_test) == 5 and small.input_shape == (64,)
    with pytest.raises(ValueError, match="num_train"):
        ds.subset(0)


def test_npz_object_arrays_load_without_arbitrary_pickles(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1, 2], [3]], dtype=object), allow_pickle=True)
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", buffer.getvalue())
    assert readers._load_npz(path)["x"].tolist() == [[1, 2], [3]]
