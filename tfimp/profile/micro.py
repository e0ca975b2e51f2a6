"""`micro()`: will a model fit a microcontroller? Arena measured with TFLite Micro, flash
bytes, op list, and a verdict with margins against named board profiles."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from tfimp.export.boards import BOARDS, KIB, MIB, MicroBoard, get_board

__all__ = ["BOARDS", "KIB", "MIB", "MicroBoard", "MicroProfile", "Verdict", "get_board",
           "micro"]


@dataclass(frozen=True)
class Verdict:
    """Whether the model (flash) and its tensor arena (RAM) fit a board, and by how much.

    A margin is the budget left (negative: missing). `fits` is None when the arena is unknown
    because TFLite Micro cannot run the model. Program code, stacks and buffers of the
    application are not counted.
    """

    board: str
    fits: bool | None
    ram_margin_bytes: int | None
    flash_margin_bytes: int

    def __str__(self) -> str:
        word = {True: "fits", False: "does NOT fit", None: "unknown"}[self.fits]
        ram = "n/a" if self.ram_margin_bytes is None else f"{self.ram_margin_bytes / KIB:+.1f} KiB"
        return (f"{self.board}: {word} (RAM margin {ram}, "
                f"flash margin {self.flash_margin_bytes / KIB:+.1f} KiB)")


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
    """

    model: str
    flash_bytes: int
    arena_bytes: int | None
    arena_error: str | None
    ops: tuple[str, ...]
    verdict: Verdict | None = None

    def check(self, board) -> Verdict:
        """The fits / does-not-fit verdict against `board` (a name or a `MicroBoard`)."""
        b = get_board(board)
        ram = None if self.arena_bytes is None else b.ram_bytes - self.arena_bytes
        flash = b.flash_bytes - self.flash_bytes
        fits = None if ram is None else (ram >= 0 and flash >= 0)
        if flash < 0:
            fits = False
        return Verdict(b.name, fits, ram, flash)

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
        if self.verdict is not None:
            lines.append(f"  {self.verdict}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def micro(model, board=None) -> MicroProfile:
    """Measures what a model needs on a microcontroller.

    The tensor arena is measured by running the model once in the `tflite-micro` interpreter
    (in a child process). A model TFLite Micro cannot run gets `arena_bytes=None` and the
    reason in `arena_error`.

    Args:
        model: path to a .tflite file, or its bytes.
        board: a name from `BOARDS` or a `MicroBoard` to judge the model against.

    Raises:
        ValueError: the model is missing or not a TFLite file, or the board is unknown.

    Example:
        >>> p = tfimp.profile.micro("model_int8.tflite", board="arduino-nano-33-ble")
        >>> p.arena_bytes, p.verdict.fits, p.verdict.ram_margin_bytes
    """
    from tfimp.export.inspect import inspect, read_model_bytes
    from tfimp.export.micro_run import MicroError, measure_arena

    target_board = None if board is None else get_board(board)
    data = read_model_bytes(model)
    info = inspect(data)
    try:
        arena, error = measure_arena(data), None
    except MicroError as exc:
        arena, error = None, str(exc)
    name = "<bytes>" if isinstance(model, (bytes, bytearray, memoryview)) else str(model)
    profile = MicroProfile(name, len(data), arena, error, tuple(info.ops))
    if target_board is None:
        return profile
    return dataclasses.replace(profile, verdict=profile.check(target_board))
