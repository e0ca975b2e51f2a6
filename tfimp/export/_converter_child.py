"""The converter's child process: `python -m tfimp.export._converter_child ANSWER_FD`.

It imports TensorFlow once and serves requests: each line on stdin names a FOLDER that
holds `saved_model/`, `jobs.json` (the conversions), `todo.json` (the indices still to run)
and, for calibrated modes, `samples.npz` + `samples.json`. Each conversion writes
`model_K.tflite` or `error_K.txt`; then "done" goes to ANSWER_FD. A crash of the converter
ends this process, and the parent reports it for the first conversion that wrote neither.
The process ends when stdin closes or after `IDLE` seconds without a request.
"""

from __future__ import annotations

import json
import os
import select
import sys
from pathlib import Path

IDLE = 300.0


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def convert_folder(folder: Path) -> None:
    """Runs the conversions that `folder` lists, writing each result next to them."""
    import tensorflow as tf

    from tfimp.export import quantization as quant_lib
    from tfimp.export._converter import read_samples

    jobs = json.loads((folder / "jobs.json").read_text())
    rep = read_samples(folder)
    for k in json.loads((folder / "todo.json").read_text()):
        job = jobs[k]
        try:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved_model"))
            quant_lib.configure_converter(converter, tf, quant_lib.get(job["quantization"]),
                                          job["sparse"], rep, job.get("qdq", False))
            blob = bytes(converter.convert())
        except Exception as e:  # noqa: BLE001 - the converter's refusal, for the parent
            _write(folder / f"error_{k}.txt", f"{type(e).__name__}: {e}".encode())
            continue
        _write(folder / f"model_{k}.tflite", blob)


def main(answer_fd: int) -> int:
    import tensorflow  # noqa: F401 - loaded once, before the first request

    with os.fdopen(answer_fd, "w") as answers:
        while select.select([sys.stdin], [], [], IDLE)[0]:
            line = sys.stdin.readline()
            if not line:
                break
            convert_folder(Path(json.loads(line)["folder"]))
            answers.write("done\n")
            answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
