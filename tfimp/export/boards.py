"""Microcontroller boards: the RAM and flash budgets that `tfimp.export.to_micro` fits a model
into and `tfimp.profile.micro` judges it against."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["BOARDS", "KIB", "MIB", "MicroBoard", "Verdict", "get_board", "verdict"]

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class MicroBoard:
    """RAM and flash budgets of a microcontroller board.

    Attributes:
        name: registry name.
        ram_bytes: on-chip SRAM that the application can use for the tensor arena.
        flash_bytes: flash that holds the program and the model.
        core: the CPU core.
        source: where the figures come from.
    """

    name: str
    ram_bytes: int
    flash_bytes: int
    core: str
    source: str

    def __post_init__(self):
        for field in ("ram_bytes", "flash_bytes"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Argument `{field}` must be a positive integer. "
                                 f"Received: {field}={value!r}")

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> MicroBoard:
        return cls(**config)


def _board(name, ram_kib, flash_kib, core, source) -> MicroBoard:
    return MicroBoard(name, ram_kib * KIB, flash_kib * KIB, core, source)


BOARDS: dict[str, MicroBoard] = {b.name: b for b in (
    _board("cortex-m4-256k", 256, 1024, "Arm Cortex-M4F",
           "a generic Cortex-M4 part with 256 KB SRAM / 1 MB flash (e.g. Nordic nRF52840)"),
    _board("arduino-nano-33-ble", 256, 1024, "Arm Cortex-M4F (nRF52840, 64 MHz)",
           "Arduino Nano 33 BLE datasheet: nRF52840, 1 MB flash, 256 KB SRAM"),
    _board("esp32-s3", 512, 8 * 1024, "Xtensa LX7 dual-core (240 MHz)",
           "Espressif ESP32-S3 datasheet: 512 KB SRAM; 8 MB flash as on ESP32-S3-DevKitC-1-N8"),
    _board("cortex-m7-320k", 320, 1024, "Arm Cortex-M7 (STM32F746, 216 MHz)",
           "ST STM32F746xx datasheet: 1 MB flash, 320 KB SRAM (incl. 64 KB DTCM)"),
    _board("sparkfun-edge", 384, 1024, "Arm Cortex-M4F (Ambiq Apollo3 Blue)",
           "Ambiq Apollo3 Blue datasheet: 1 MB flash, 384 KB SRAM"),
    _board("rp2040", 264, 2 * 1024, "Arm Cortex-M0+ dual-core (133 MHz)",
           "Raspberry Pi RP2040 datasheet: 264 KB SRAM; 2 MB QSPI flash on the Pico board"),
    _board("cortex-m0plus-32k", 32, 256, "Arm Cortex-M0+ (SAMD21G18, 48 MHz)",
           "Microchip SAMD21 datasheet (Arduino Zero): 256 KB flash, 32 KB SRAM"),
)}


def get_board(board) -> MicroBoard:
    """Returns the `MicroBoard` named `board` (or `board` itself if it is one).

    Raises:
        ValueError: an unknown name; the message lists the known boards.
    """
    if isinstance(board, MicroBoard):
        return board
    if board not in BOARDS:
        raise ValueError(f"Argument `board` must be a MicroBoard or one of: "
                         f"{', '.join(sorted(BOARDS))}. Received: board={board!r}")
    return BOARDS[board]


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


def verdict(board, flash_bytes: int, arena_bytes: int | None) -> Verdict:
    """Whether `flash_bytes` of model and an arena of `arena_bytes` (None: unknown) fit
    `board` (a name or a `MicroBoard`)."""
    b = get_board(board)
    ram = None if arena_bytes is None else b.ram_bytes - arena_bytes
    flash = b.flash_bytes - flash_bytes
    fits = None if ram is None else (ram >= 0 and flash >= 0)
    if flash < 0:
        fits = False
    return Verdict(b.name, fits, ram, flash)
