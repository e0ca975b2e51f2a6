"""`micro()`: will a model fit a microcontroller? Arena measured with TFLite Micro, flash
bytes, op list, a verdict with margins against named board profiles, and with
`emulate="cortex-m4"` the instructions per inference on an emulated Cortex-M4 (QEMU)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from tfimp.export.boards import BOARDS, KIB, MIB, MicroBoard, Verdict, get_board, verdict

__all__ = ["BOARDS", "KIB", "MIB", "MicroBoard", "MicroProfile", "Verdict", "get_board",
           "micro"]


@dataclass(frozen=True)
class MicroProfile:
    """Microcontroller figures of one model.

    Attributes:
        model: the model's path (or "<bytes>").
        flash_bytes: bytes of the model in flash (the .tflite size).
        arena_bytes: tensor-arena bytes TFLite Micro used, or None.
        arena_error: why the arena could not be measured, or None.
        ops: builtin op names in execution order.
        verdict: the verdict for the requested board, or None.
        emulated: the core the model ran on under QEMU ("cortex-m4"), or None.
        instructions: instructions per inference there (median over the samples; QEMU's
            instruction counter, to within 40). Instruction counts are not cycles.
        program_flash_bytes: the emulated program's code and read-only data (TFLite Micro,
            the kernels the model uses, the runner and the model).
    """

    model: str
    flash_bytes: int
    arena_bytes: int | None
    arena_error: str | None
    ops: tuple[str, ...]
    verdict: Verdict | None = None
    emulated: str | None = None
    instructions: int | None = None
    program_flash_bytes: int | None = None

    def check(self, board) -> Verdict:
        """The fits / does-not-fit verdict against `board` (a name or a `MicroBoard`)."""
        return verdict(board, self.flash_bytes, self.arena_bytes)

    def get_config(self) -> dict:
        config = dataclasses.asdict(self)
        config["ops"] = list(self.ops)
        return config

    @classmethod
    def from_config(cls, config: dict) -> MicroProfile:
        config = dict(config, ops=tuple(config["ops"]))
        if config.get("verdict") is not None:
            config["verdict"] = Verdict(**config["verdict"])
        return cls(**config)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.get_config(), indent=indent)

    def table(self) -> str:
        arena = (f"{self.arena_bytes} B" if self.arena_bytes is not None
                 else f"n/a ({self.arena_error})")
        lines = [self.model, f"  flash (model)   {self.flash_bytes} B",
                 f"  tensor arena    {arena}",
                 f"  ops             {', '.join(dict.fromkeys(self.ops))}"]
        if self.instructions is not None:
            lines.append(f"  instructions    {self.instructions:,} per inference on an "
                         f"emulated {self.emulated} (QEMU; not cycles)")
            lines.append(f"  program flash   {self.program_flash_bytes:,} B (TFLite Micro, "
                         f"kernels, runner, model)")
        if self.verdict is not None:
            lines.append(f"  {self.verdict}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


EMULATED = ("cortex-m4",)


def micro(model, board=None, emulate: str | None = None, tflm_dir=None, library=None,
          samples: int = 3) -> MicroProfile:
    """Measures what a model needs on a microcontroller.

    The tensor arena is measured by running the model once in the `tflite-micro` interpreter
    (in a child process); a model with tfimp's sparse FULLY_CONNECTED op runs as its dense
    stand-in, which has the same tensors and ops. A model TFLite Micro cannot run gets
    `arena_bytes=None` and the reason in `arena_error`.

    With `emulate="cortex-m4"`, the model also runs as a micro bundle compiled against
    TensorFlow Lite Micro for a Cortex-M4F, under QEMU (`tfimp.bundle.tflm_build`), on
    `samples` random inputs, bit-exact with the Python interpreter; the profile then holds
    the instructions per inference. That needs the Arm toolchain, qemu-system-arm and a TFLite
    Micro tree with its Cortex-M4F library built.

    Args:
        model: path to a .tflite file, or its bytes.
        board: a name from `BOARDS` or a `MicroBoard` to judge the model against.
        emulate: None, or "cortex-m4" to count instructions on an emulated core.
        tflm_dir: the TensorFlow Lite Micro tree; None reads TFIMP_TFLM_DIR.
        library: the `libtensorflow-microlite.a` (or its gen/ folder) to link, e.g. a
            CMSIS-NN build; None takes the tree's Cortex-M4F build.
        samples: random inputs to run on the emulated core.

    Raises:
        ValueError: the model is missing or not a TFLite file, the board is unknown, or
            `emulate` is set without a TFLite Micro tree (`tflm_dir` / TFIMP_TFLM_DIR).
        tfimp.bundle.tflm_build.TflmBuildError: the toolchain or the library is missing, or
            the program does not build, run, or match the Python interpreter.

    Example:
        >>> p = tfimp.profile.micro("model_int8.tflite", board="arduino-nano-33-ble")
        >>> p.arena_bytes, p.verdict.fits, p.verdict.ram_margin_bytes
    """
    from tfimp.export.inspect import inspect, read_model_bytes
    from tfimp.export.micro_run import MicroError, measure_arena

    target_board = None if board is None else get_board(board)
    if emulate is not None:
        _check_emulation(emulate, tflm_dir, samples)
    data = read_model_bytes(model)
    info = inspect(data)
    try:
        arena, error = measure_arena(_runnable(data)), None
    except MicroError as exc:
        arena, error = None, str(exc)
    name = "<bytes>" if isinstance(model, (bytes, bytearray, memoryview)) else str(model)
    profile = MicroProfile(name, len(data), arena, error, tuple(info.ops))
    if emulate is not None and arena is not None:
        profile = _emulated(profile, data, emulate, tflm_dir, library, samples)
    if target_board is None:
        return profile
    return dataclasses.replace(profile, verdict=profile.check(target_board))


def _runnable(data: bytes) -> bytes:
    """The model the Python interpreter can run: a sparse one as its dense stand-in."""
    from tfimp.export import tflm_sparse

    return tflm_sparse.densify(data) if tflm_sparse.has_sparse(data) else data


def check_emulation(emulate: str, tflm_dir=None, samples: int = 3) -> None:
    """Raises ValueError unless `emulate` names an emulated core and a TFLite Micro tree is
    there to build for it (`tflm_dir`, or TFIMP_TFLM_DIR)."""
    _check_emulation(emulate, tflm_dir, samples)


def _check_emulation(emulate, tflm_dir, samples) -> None:
    import os

    from tfimp._util import validate as v
    from tfimp.bundle.tflm_build import tflm_tree

    if emulate not in EMULATED:
        v.fail("emulate", emulate, f"None or one of {list(EMULATED)}")
    v.positive_int("samples", samples)
    if tflm_dir is None and not os.environ.get("TFIMP_TFLM_DIR"):
        v.fail("tflm_dir", tflm_dir, "a TensorFlow Lite Micro tree with its Cortex-M4F library "
               "built (or set TFIMP_TFLM_DIR) to emulate a core")
    tflm_tree(tflm_dir)


def _emulated(profile: MicroProfile, data: bytes, core: str, tflm_dir, library,
              samples: int) -> MicroProfile:
    """`profile` with the instructions per inference of `data` on the emulated `core`."""
    import statistics
    import tempfile
    from pathlib import Path

    from tfimp.bundle import build
    from tfimp.bundle import tflm_build as tb

    with tempfile.TemporaryDirectory(prefix="tfimp-emulate-") as tmp:
        model = Path(tmp) / "model.tflite"
        model.write_bytes(data)
        bundle = build(model, "micro", Path(tmp) / "bundle", profile=False)
        xs = tb.random_inputs(bundle, samples)
        run = tb.run_bundle(bundle, xs, core, tflm_dir, library)
        tb.check_bit_exact(bundle, xs, run)
    return dataclasses.replace(profile, emulated=core,
                               instructions=int(statistics.median(run.instructions)),
                               program_flash_bytes=run.flash_bytes)
