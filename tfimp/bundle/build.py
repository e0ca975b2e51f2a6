"""`build`: a checked, self-contained folder that runs a .tflite model on a device."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from tfimp._util.validate import fail, output_folder
from tfimp.bundle import targets as targets_lib
from tfimp.bundle.manifest import MANIFEST, Preprocessing, make_manifest, read_labels


def build(
    model_path: str | os.PathLike,
    target: str,
    out_dir: str | os.PathLike,
    force: bool = False,
    board: str | None = None,
    labels=None,
    preprocessing: Preprocessing | dict | None = None,
    profile: bool = True,
    export_report=None,
    compression=None,
) -> Path:
    """Builds a deployment bundle for `target` ("rpi", "android" or "micro").

    The bundle is assembled in a temporary folder next to `out_dir` and moved into place only
    when complete, so a failure leaves nothing half-written.

    Args:
        model_path: the .tflite model.
        target: the device family: a name in `tfimp.bundle.TARGETS`.
        out_dir: the bundle folder; it must not exist or be empty, unless `force`.
        force: replace an existing, non-empty `out_dir`.
        board: micro only: the board profile whose RAM and flash the model must fit.
        labels: class names: a file with one per line, or a list of strings.
        preprocessing: normalization of raw inputs, a `Preprocessing` or its config dict.
        profile: measure latency (LiteRT) or memory (TFLite Micro) here, for the manifest.
        export_report: the export settings to record: a `tfimp.export.ExportReport`, its
            dict, or the path of its JSON.
        compression: micro only: None, "pruning", "lut", "sparse" or "auto" (or a
            `tfimp.export.MicroCompression`): store the weights in TFLite Micro's DECODE
            encodings or for tfimp's sparse FULLY_CONNECTED kernel, verified bit for bit (see
            `tfimp.export.to_micro`); the bundle's model is then the compressed
            `model.tflite`.

    Returns:
        The path of the bundle folder.

    Raises:
        ValueError: bad arguments, or a model the target cannot run (`BundleError`).
        FileExistsError: `out_dir` holds files and `force` is False.
        PermissionError: `out_dir` cannot be written.

    Example:
    >>> tfimp.bundle.build("model.tflite", "rpi", "out/rpi", labels="labels.txt")  # doctest: +SKIP
    """
    from tfimp.export import inspect

    model = _model_file(model_path)
    tgt = targets_lib.get(target)
    out = _out_dir(out_dir, force)
    info = inspect(model)
    tgt.check(info, board, compression)
    label_list = _labels(read_labels(labels), info)
    pre = _check_preprocessing(_preprocessing(preprocessing), info)
    export = _export_settings(export_report)
    stage = _stage_dir(out, out_dir)
    try:
        staged = stage / model.name
        shutil.copyfile(model, staged)
        manifest = make_manifest(staged, info, tgt.name, label_list, pre, export)
        tgt.write(stage, targets_lib.Context(staged, info, manifest, board, profile,
                                             compression))
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.chmod(stage, 0o755)
        _move_into_place(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _model_file(model_path) -> Path:
    if not isinstance(model_path, (str, os.PathLike)) or not Path(model_path).is_file():
        raise ValueError(f"Argument `model_path` must name an existing .tflite file. "
                         f"Received: model_path={model_path!r}")
    return Path(model_path).resolve()


def _out_dir(out_dir, force: bool) -> Path:
    out = output_folder("out_dir", out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"Argument `out_dir` must be a folder. Received: "
                              f"out_dir={str(out_dir)!r}, which is a file.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"Argument `out_dir` names a folder that is not empty. Received: "
                              f"out_dir={str(out_dir)!r}. Pass force=True (--force) to replace "
                              f"it, or choose a new folder.")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"Argument `out_dir` cannot be written: {str(parent)!r} is not "
                              f"writable. Received: out_dir={str(out_dir)!r}. Choose a folder "
                              f"you can write to.")
    return out


def _stage_dir(out: Path, out_dir) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise PermissionError(f"Argument `out_dir` cannot be written: {e.strerror} ({e.filename})."
                              f" Received: out_dir={str(out_dir)!r}. Choose a folder you can "
                              f"write to.") from None


def _move_into_place(stage: Path, out: Path) -> None:
    """Replaces `out` by `stage`; the old folder is removed only after the rename."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(stage, out)
    except BaseException:
        if old is not None:
            os.replace(old / out.name, out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _labels(labels: list[str] | None, info) -> list[str] | None:
    if labels is None:
        return None
    classes = info.tensors[info.outputs[0]].shape[-1] if info.outputs else 0
    if len(labels) != classes:
        raise ValueError(f"Argument `labels` must hold one label per class of the first output "
                         f"({classes}). Received: {len(labels)} labels.")
    return labels


def _preprocessing(pre) -> Preprocessing | None:
    if pre is None or isinstance(pre, Preprocessing):
        return pre
    if isinstance(pre, dict):
        return Preprocessing.from_config(pre)
    raise ValueError(f"Argument `preprocessing` must be a Preprocessing, a dict with `mean` and "
                     f"`std`, or None. Received: preprocessing={pre!r}")


def _check_preprocessing(pre: Preprocessing | None, info) -> Preprocessing | None:
    """`pre` if its per-channel values fit every input: one value, or one per channel (the
    input's last dimension), as the runners broadcast them."""
    if pre is None:
        return None
    for name in ("mean", "std"):
        value = getattr(pre, name)
        if not isinstance(value, tuple) or len(value) == 1:
            continue
        for i in info.inputs:
            t = info.tensors[i]
            channels = t.shape[-1] if t.shape else 1
            if len(value) != channels:
                fail(f"preprocessing.{name}", value, f"one number, or one per channel of the "
                     f"model's input {t.name!r} of shape {list(t.shape)} ({channels} values)")
    return pre


def _export_settings(report) -> dict | None:
    if report is None:
        return None
    if isinstance(report, (str, os.PathLike)):
        if not Path(report).is_file():
            raise ValueError(f"Argument `export_report` must be an ExportReport, its dict, or "
                             f"a JSON file of it. Received: export_report={str(report)!r}")
        try:
            report = json.loads(Path(report).read_text())
        except (ValueError, UnicodeDecodeError) as e:
            fail("export_report", str(report), f"a JSON file of an export report (--json of "
                 f"`tfimp export`); it cannot be read: {e}")
    if hasattr(report, "to_dict"):
        report = report.to_dict()
    if not isinstance(report, dict):
        raise ValueError(f"Argument `export_report` must be an ExportReport, its dict, or a "
                         f"JSON file of it. Received: export_report of type {type(report)}")
    keep = ("quantization", "sparse", "keras_sparsity", "tflite_bytes", "gzip_bytes",
            "dense_float32_bytes", "compression_ratio", "verification")
    return {k: report[k] for k in keep if k in report}
