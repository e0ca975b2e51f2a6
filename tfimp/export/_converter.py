"""Runs the TFLite converter in a child process, so that a converter crash is an error here.

The TFLite converter is native code: bad calibration data or an unusual model can kill the
process that runs it (a segmentation fault) instead of raising. The caller's process writes
the model as a SavedModel (the serving endpoint that `TFLiteConverter.from_keras_model`
exports for a Keras 3 model, so the bytes are the same), the calibration samples and the list
of conversions; a child (`_converter_child.py`) converts each one and writes its bytes or its
error. A conversion that kills the child is reported as that conversion's error, and a new
child carries on with the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from tfimp._util import proc
from tfimp._util.errors import TfimpError

TIMEOUT = 3600.0
"""Seconds one child may run before it is killed (a converter that hangs)."""

_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds the tfimp package


class ConverterError(TfimpError, ValueError):
    """The TFLite converter refused the model, crashed, or did not finish."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One conversion: a quantization config (as its `get_config`) and the sparse setting."""

    quantization: dict
    sparse: bool
    qdq: bool = False


def convert(model, jobs: list[Job], samples: list | None) -> list[bytes | str]:
    """The .tflite bytes of each job, or the error (text) that ended it.

    The conversions run in a long-lived child (`proc.Worker`): TensorFlow is imported there
    once per process, not once per conversion.

    Args:
        model: a built Keras 3 model.
        jobs: the conversions to run.
        samples: calibration samples (each a list of arrays, one per input, or a dict by
            input name), or None.
    """
    with tempfile.TemporaryDirectory(prefix="tfimp-convert-") as tmp:
        folder = Path(tmp)
        if not _save_model(model, folder / "saved_model"):
            return _in_process(model, jobs, samples)
        _write_samples(folder, samples)
        (folder / "jobs.json").write_text(json.dumps([dataclasses.asdict(j) for j in jobs]))
        results: dict[int, bytes | str] = {}
        pending = list(range(len(jobs)))
        while pending:
            (folder / "todo.json").write_text(json.dumps(pending))
            ended = _run_child(folder)
            results.update(_collect(folder, pending))
            unfinished = [k for k in pending if k not in results]
            if unfinished:  # the child died on this one: report it and go on with the rest
                results[unfinished[0]] = f"the TFLite converter crashed: {ended}"
            pending = unfinished[1:]
    return [results[k] for k in range(len(jobs))]


_WORKER: proc.Worker | None = None


def _worker() -> proc.Worker:
    global _WORKER
    if _WORKER is None:
        env = proc.quiet_env()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
        _WORKER = proc.Worker([sys.executable, "-m", "tfimp.export._converter_child"],
                              "the TFLite converter", env=env)
    return _WORKER


def _run_child(folder: Path) -> str:
    """Has the converter's child run the conversions in `folder`; how it ended."""
    try:
        _worker().request(json.dumps({"folder": str(folder)}), TIMEOUT)
    except proc.ChildProcessFailed as e:
        how, _, output = str(e).partition("\nOutput:")
        how = _last_line(how).removeprefix("the TFLite converter failed: ").rstrip(".")
        return f"{how} (its output ends: {_last_line(output)})"
    return "it ended its work without writing a result"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _collect(folder: Path, pending: list[int]) -> dict[int, bytes | str]:
    out: dict[int, bytes | str] = {}
    for k in pending:
        blob, error = folder / f"model_{k}.tflite", folder / f"error_{k}.txt"
        if blob.exists():
            out[k] = blob.read_bytes()
        elif error.exists():
            out[k] = error.read_text()
    return out


def _save_model(model, path: Path) -> bool:
    """Writes `model`'s inference endpoint as a SavedModel, as `from_keras_model` does;
    False when the model can't be exported that way (it is then converted in process)."""
    import keras
    import tensorflow as tf
    from tensorflow.lite.python.util import get_save_spec

    from tfimp.export import recurrent

    archive = keras.export.ExportArchive()
    try:
        archive.track(model)
        if isinstance(model, keras.Sequential) or type(model).__name__ == "Functional":
            signature = [tf.TensorSpec(t.shape, dtype=t.dtype, name=t.name)
                         for t in model.inputs]
            signature = [signature] if len(signature) > 1 else signature
        else:
            spec = get_save_spec(model)
            if not spec:
                return False
            signature = [spec]
        with recurrent.unrolled(model):  # traced here: recurrent layers as plain ops
            archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                                 signature)
            with contextlib.redirect_stdout(io.StringIO()):
                archive.write_out(str(path), verbose=False)
    except Exception:  # noqa: BLE001 - the converter's own fallback handles these models
        return False
    return True


def _write_samples(folder: Path, samples: list | None) -> None:
    if samples is None:
        return
    keys = sorted(samples[0]) if isinstance(samples[0], dict) else None
    arrays = {}
    for k, sample in enumerate(samples):
        items = [sample[key] for key in keys] if keys else list(sample)
        arrays.update({f"s{k}_{i}": np.asarray(x) for i, x in enumerate(items)})
    np.savez(folder / "samples.npz", **arrays)
    (folder / "samples.json").write_text(json.dumps({"count": len(samples), "keys": keys,
                                                     "inputs": len(arrays) // len(samples)}))


def read_samples(folder: Path):
    """The calibration samples written by the parent, as a representative-dataset callable;
    None without samples."""
    if not (folder / "samples.json").exists():
        return None
    meta = json.loads((folder / "samples.json").read_text())
    with np.load(folder / "samples.npz") as data:
        arrays = {k: data[k] for k in data.files}
    samples = []
    for k in range(meta["count"]):
        items = [arrays[f"s{k}_{i}"] for i in range(meta["inputs"])]
        samples.append(dict(zip(meta["keys"], items)) if meta["keys"] else items)
    return lambda: iter(samples)


def _in_process(model, jobs: list[Job], samples: list | None) -> list[bytes | str]:
    import tensorflow as tf

    from tfimp._util import tf_logs
    from tfimp.export import quantization as quant_lib, recurrent

    rep = None if samples is None else (lambda: iter(samples))
    out: list[bytes | str] = []
    for job in jobs:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        quant_lib.configure_converter(converter, tf, quant_lib.get(job.quantization), job.sparse,
                                      rep, job.qdq)
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                # Keras prints its export to stdout; the warning is about TF1's
                # `quantized_input_stats`, which TFLiteConverterV2 never uses.
                warnings.filterwarnings("ignore", "Statistics for quantized inputs")
                with tf_logs.held_back_if_quiet(), recurrent.unrolled(model):
                    out.append(bytes(converter.convert()))
        except Exception as e:  # noqa: BLE001 - reported as this conversion's error
            out.append(str(e))
    return out
