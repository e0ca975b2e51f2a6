"""Which TFLite Micro encodings a model gets: each candidate runs in the TFLM interpreter; the
smallest one that is bit-exact with the uncompressed model (and fits the board) wins.

DECODE writes each decoded tensor into the arena while its reader runs, so compression trades
flash for RAM. With a board, a candidate whose arena is too large gives its largest decoded
tensors back to plain storage, one at a time, until it fits. tfimp's sparse FULLY_CONNECTED
kernel ("sparse") decodes nothing: a candidate with it runs in TFLM as its dense stand-in (the
same tensors and ops, so the same arena), and the numpy mirror of the kernel must reproduce
every rewritten op's output from that run (`tfimp.export.tflm_sparse.check_mirror`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfimp.export import tflm_compression as tc
from tfimp.export import tflm_sparse
from tfimp.export.micro_run import MicroError, MicroRun, run_micro

MODES = ("pruning", "lut", "sparse", "auto")
ENCODINGS = (*tc.ENCODINGS, "sparse")
_AUTO = ("pruning", "lut", "pruning+lut", "sparse", "sparse+pruning+lut")


@dataclasses.dataclass(frozen=True)
class MicroCompression:
    """How `to_micro` compresses constant tensors for TFLite Micro's DECODE op.

    Args:
        mode: "pruning" (bitmap of the non-zeros), "lut" (value table and 1-7 bit indices),
            "sparse" (tfimp's sparse FULLY_CONNECTED kernel: non-zeros and their indices, no
            decoded copy in the arena) or "auto" (the smallest model of all of them and their
            mixes; with a board, the smallest that fits it).
        lut_bits: LUT index width, 1-7; None takes the fewest bits each tensor needs.
    """

    mode: str = "auto"
    lut_bits: int | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Argument `mode` must be one of {list(MODES)}. Received: "
                             f"mode={self.mode!r}")
        tc.Lut(self.lut_bits)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> MicroCompression:
        return cls(**config)


def get(compression) -> MicroCompression | None:
    """The config for None/"none", a mode name, a config dict, or a `MicroCompression`."""
    if compression is None or compression == "none":
        return None
    if isinstance(compression, MicroCompression):
        return compression
    if isinstance(compression, dict):
        return MicroCompression.from_config(compression)
    if isinstance(compression, str) and compression in MODES:
        return MicroCompression(compression)
    raise ValueError(f"Argument `compression` must be None, one of {list(MODES)} or a "
                     f"tfimp.export.MicroCompression. Received: compression={compression!r}")


@dataclasses.dataclass(frozen=True)
class MicroEncoding:
    """One way of storing the model for TFLite Micro, as measured in its interpreter.

    Attributes:
        name: "none" (uncompressed), "pruning", "lut", "pruning+lut" (per tensor the smaller),
            a fitted variant ("... fitted to BOARD"), or "given" (a model compressed before).
        flash_bytes: bytes of the model; None when the encoding applies to no tensor.
        arena_bytes: tensor arena TFLM used; `arena_size` adds the margin (16-byte rounded).
        bit_exact: outputs equal the uncompressed model's on every verification input.
        tensors: the encoding of each compressible tensor.
        fits: whether flash and `arena_size` fit the board (None without a board).
        note: why the encoding was not built, or which other row it repeats.
    """

    name: str
    flash_bytes: int | None
    arena_bytes: int | None
    arena_size: int | None
    bit_exact: bool | None
    tensors: tuple = ()
    fits: bool | None = None
    note: str = ""

    def counts(self) -> dict[str, int]:
        return {e: sum(t.encoding == e for t in self.tensors) for e in ENCODINGS}

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["tensors"] = [t.to_dict() for t in self.tensors]
        return out


@dataclasses.dataclass(frozen=True)
class Choice:
    """The encoding chosen, its model bytes, and every encoding tried."""

    data: bytes
    chosen: MicroEncoding
    tried: tuple[MicroEncoding, ...]


def arena_with_margin(arena_bytes: int, margin: float) -> int:
    """`arena_bytes` plus `margin` (a fraction), rounded up to 16 bytes."""
    return int(math.ceil(arena_bytes * (1.0 + margin) / 16.0) * 16)


def _fits(board, flash: int, arena_size: int) -> bool | None:
    if board is None:
        return None
    return flash <= board.flash_bytes and arena_size <= board.ram_bytes


class _Trials:
    """Builds and runs candidate plans once each; remembers their figures and bytes."""

    def __init__(self, source: bytes, options, xs, reference: MicroRun, margin, board):
        self.source, self.options, self.xs = source, options, xs
        self.sparse_options = tflm_sparse.sparse_options(source)
        self.reference, self.margin, self.board = reference, margin, board
        self.rows: list[MicroEncoding] = []
        self.data: dict[str, bytes] = {}
        self.by_plan: dict[tuple, MicroEncoding] = {}
        none = tuple(tc.TensorEncoding(o.name, o.shape, o.dtype, "none", None, o.dense_bytes,
                                       o.dense_bytes, 0) for o in options if not o.reason)
        size = arena_with_margin(reference.arena_bytes, margin)
        self._add(MicroEncoding("none", len(source), reference.arena_bytes, size, True, none,
                                _fits(board, len(source), size)), source, ())

    def _add(self, row: MicroEncoding, data: bytes, key: tuple) -> MicroEncoding:
        self.rows.append(row)
        self.data[row.name] = data
        self.by_plan.setdefault(key, row)
        return row

    def run(self, name: str, plan: dict, empty_note: str = "", sparse=()) -> MicroEncoding:
        """Builds `plan` (DECODE encodings) with the FULLY_CONNECTED ops reading the weights
        in `sparse` rewritten to the sparse kernel, runs it in TFLM and checks it bit for bit;
        reuses equal plans. An empty plan gives a row with `empty_note` and no figures."""
        if not plan and not sparse:
            row = MicroEncoding(name, None, None, None, None, note=empty_note)
            self.rows.append(row)
            return row
        key = (tuple(sorted((k, repr(v)) for k, v in plan.items())), tuple(sorted(sparse)))
        if key in self.by_plan:
            same = self.by_plan[key]
            row = dataclasses.replace(same, name=name, note=f"same tensors as {same.name}")
            return self._add(row, self.data[same.name], key)
        data, tensors = self._build(plan, sparse)
        run = measure(name, data, self.xs, self.reference)
        size = arena_with_margin(run.arena_bytes, self.margin)
        row = MicroEncoding(name, len(data), run.arena_bytes, size, True, tensors,
                            _fits(self.board, len(data), size))
        return self._add(row, data, key)

    def _build(self, plan: dict, sparse) -> tuple[bytes, tuple]:
        if plan:
            compressed = tc.compress_tflm(self.source, plan)
            data, tensors = compressed.data, compressed.tensors
        else:
            data, tensors = self.source, self.rows[0].tensors
        if not sparse:
            return data, tensors
        stored = {o.name: o.sparse_bytes for o in self.sparse_options
                  if (o.subgraph, o.index) in set(sparse)}
        tensors = tuple(dataclasses.replace(t, encoding="sparse", stored_bytes=stored[t.name],
                                            decoded_bytes=0) if t.name in stored else t
                        for t in tensors)
        return tflm_sparse.sparsify(data, sparse), tensors

    def sparse_plan(self, with_decode: bool) -> tuple[dict, tuple]:
        """The weights the sparse kernel stores in fewer bytes, and with `with_decode` the
        DECODE encoding of every other tensor that one saves bytes with."""
        options = [o for o in self.sparse_options if o.saves]
        sparse = tuple((o.subgraph, o.index) for o in options)
        if not with_decode or not sparse:
            return {}, sparse
        tree_readers = tflm_sparse.tensors_read_by(self.source, [o.op for o in options])
        rest = {k: e for k, e in tc.plan_of(self.options, "auto").items()
                if k not in tree_readers}
        return rest, sparse


def measure(name: str, data: bytes, xs, reference: MicroRun) -> MicroRun:
    """Runs `data` in TFLM (a sparse model as its dense stand-in) and checks it bit for bit
    against `reference`; the sparse ops are checked with the kernel's numpy mirror.

    Raises:
        MicroError: an output differs.
    """
    if not tflm_sparse.has_sparse(data):
        run = run_micro(data, xs)
        _check_exact(name, run, reference)
        return run
    stand_in = tflm_sparse.densify(data)
    run = run_micro(stand_in, xs)
    _check_exact(name, run, reference)
    try:
        tflm_sparse.check_mirror(data, stand_in, xs, lambda m, x: run_micro(m, x).outputs)
    except tflm_sparse.MirrorMismatch as e:
        raise MicroError(f"{e} Refusing to write the {name} model; export with "
                         f"compression=None.") from None
    return run


def _check_exact(name: str, run: MicroRun, reference: MicroRun) -> None:
    total = differing = worst = 0
    for a, b in zip(run.outputs, reference.outputs):
        a, b = np.asarray(a), np.asarray(b).reshape(np.shape(a))
        wide = a.astype(np.float64) - b.astype(np.float64)
        total += a.size
        differing += int(np.count_nonzero(wide))
        worst = max(worst, float(np.max(np.abs(wide))) if wide.size else 0.0)
    if differing:
        raise MicroError(
            f"The {name} model's outputs in TFLite Micro differ from the uncompressed model's: "
            f"{differing} of {total} output values, by up to {worst:g} (raw units). Refusing to "
            f"write it; export with compression=None.")


def _empty_note(mode: str, options, sparse_options=()) -> str:
    if mode.startswith("sparse"):
        return _sparse_note(sparse_options)
    usable = [o for o in options if not o.reason]
    if not usable:
        return "no tensor can be compressed"
    if mode == "pruning":
        most = max(o.zero_fraction for o in usable)
        return (f"no tensor gets smaller: at most {100 * most:.1f}% zeros in a tensor "
                f"(prune it with tfimp.prune)")
    if mode == "lut":
        most = max(o.values_per_channel for o in usable)
        bits = max(1, (most - 1).bit_length())
        need = f"{bits}-bit indices" if bits <= 7 else "more than the 7 bits LUT indices have"
        return (f"no tensor gets smaller: up to {most} distinct values per channel need "
                f"{need}; cluster the weights (tfimp.cluster, e.g. 16 values for 4 bits)")
    return "no tensor gets smaller"


def _sparse_note(options) -> str:
    if not options:
        return "the model has no FULLY_CONNECTED op (tfimp's sparse kernel replaces those)"
    usable = [o for o in options if not o.reason]
    if not usable:
        return f"no FULLY_CONNECTED op can use tfimp's sparse kernel: {options[0].reason}"
    most = max(o.zero_fraction for o in usable)
    return (f"no FULLY_CONNECTED op's weights get smaller: at most {100 * most:.1f}% zeros "
            f"(prune them with tfimp.prune)")


def choose(source: bytes, compression: MicroCompression, board, xs, reference: MicroRun,
           margin: float) -> Choice:
    """Tries the encodings `compression` allows and returns the one to write.

    Raises:
        MicroError: an explicit mode applies to no tensor; a compressed model is not bit-exact;
            or nothing tried fits `board` (the message holds every figure).
    """
    options = tc.tensor_options(source, compression.lut_bits)
    trials = _Trials(source, options, xs, reference, margin, board)
    names = _AUTO if compression.mode == "auto" else (compression.mode,)
    for name in names:
        note = _empty_note(name, options, trials.sparse_options)
        if name.startswith("sparse"):
            plan, sparse = trials.sparse_plan(with_decode=name != "sparse")
            if name == "sparse" or plan:
                trials.run(name, plan, note, sparse)
            continue
        mode = "auto" if name == "pruning+lut" else name
        trials.run(name, tc.plan_of(options, mode, compression.lut_bits), note)
    built = [r for r in trials.rows if r.flash_bytes is not None]
    if compression.mode != "auto":
        built = [r for r in built if r.name == compression.mode]
        if not built:
            raise MicroError(f"Argument `compression` must name an encoding that applies to "
                             f"the model; {compression.mode!r} applies to no tensor of it: "
                             f"{trials.rows[-1].note}. Received: "
                             f"compression={compression.mode!r}")
    chosen = min(built, key=lambda r: (r.flash_bytes, r.arena_bytes))
    if board is not None:
        chosen = _fit(trials, chosen, compression)
    return Choice(trials.data[chosen.name], chosen, tuple(trials.rows))


def keep(data: bytes, source: bytes, xs, reference: MicroRun, margin: float, board) -> Choice:
    """The model as given: uncompressed (`data` is `source`), or compressed before and checked
    bit for bit against `source`, its decompressed form.

    Raises:
        MicroError: the compressed model is not bit-exact, or the model does not fit `board`.
    """
    trials = _Trials(source, tc.tensor_options(source), xs, reference, margin, board)
    row = trials.rows[0]
    if data != source:
        run = measure("given", data, xs, reference)
        size = arena_with_margin(run.arena_bytes, margin)
        row = MicroEncoding("given", len(data), run.arena_bytes, size, True,
                            given_encodings(data), _fits(board, len(data), size))
        trials.rows.append(row)
    if board is not None and not row.fits:
        raise MicroError(_no_fit_message([row], board))
    return Choice(data, row, tuple(trials.rows))


def given_encodings(data: bytes) -> tuple:
    """The encoded tensors of a model compressed before: DECODE ones and sparse weights."""
    found = list(tc.read_encodings(tflm_sparse.densify(data)) if tc.is_compressed(data)
                 else ())
    for name, (shape, dense, stored) in tflm_sparse.encodings(data).items():
        found.append(tc.TensorEncoding(name, shape, "int8", "sparse", None, dense, stored, 0))
    return tuple(found)


def _fit(trials: _Trials, chosen: MicroEncoding, compression) -> MicroEncoding:
    """The smallest model that fits the board, relaxing `chosen` (the smallest) if needed."""
    board = trials.board
    if not chosen.fits and chosen.flash_bytes <= board.flash_bytes:
        _relax(trials, chosen, compression)
    fitting = [r for r in trials.rows if r.fits]
    if not fitting:
        raise MicroError(_no_fit_message(trials.rows, board))
    return min(fitting, key=lambda r: (r.flash_bytes, r.arena_bytes))


def _relax(trials: _Trials, start: MicroEncoding, compression) -> None:
    """Gives the largest decoded tensors back to plain storage, one at a time, until the model
    fits the board or outgrows its flash."""
    options = {o.name: o for o in trials.options if not o.reason}
    encoded = sorted((t for t in start.tensors if t.encoding in ("pruning", "lut")),
                     key=lambda t: -t.decoded_bytes)
    plan = {(options[t.name].subgraph, options[t.name].index):
            tc.Lut(compression.lut_bits) if t.encoding == "lut" else "pruning" for t in encoded}
    names = {t.name for t in start.tensors if t.encoding == "sparse"}
    sparse = tuple((o.subgraph, o.index) for o in trials.sparse_options if o.name in names)
    for k, tensor in enumerate(encoded[:-1], start=1):
        plan.pop((options[tensor.name].subgraph, options[tensor.name].index))
        row = trials.run(f"{start.name} fitted to {trials.board.name} ({k} kept dense)", plan,
                         sparse=sparse)
        if row.fits or row.flash_bytes > trials.board.flash_bytes:
            return


def _no_fit_message(rows, board) -> str:
    lines = [f"No encoding fits the board {board.name!r} ({board.ram_bytes:,} bytes of RAM, "
             f"{board.flash_bytes:,} bytes of flash):"]
    for r in rows:
        if r.flash_bytes is None:
            lines.append(f"  {r.name}: not built ({r.note})")
        else:
            lines.append(f"  {r.name}: flash {r.flash_bytes:,} B, arena {r.arena_size:,} B "
                         f"(measured {r.arena_bytes:,} B + margin)")
    lines.append("Prune further or structurally (fewer channels), cluster the weights "
                 "(tfimp.cluster) for LUT, or choose a larger board.")
    return "\n".join(lines)


def encodings_table(rows, board=None) -> str:
    """A readable table of the encodings tried."""
    head = f"{'encoding':<44} {'flash B':>9} {'arena B':>9} {'tensors':<22} {'fits':<5}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.flash_bytes is None:
            lines.append(f"{r.name:<44} {'-':>9} {'-':>9} {r.note}")
            continue
        counts = r.counts()
        tensors = f"{counts['pruning']} pruning, {counts['lut']} lut"
        if counts["sparse"]:
            tensors += f", {counts['sparse']} sparse"
        fits = "" if r.fits is None else ("yes" if r.fits else "no")
        lines.append(f"{r.name:<44} {r.flash_bytes:>9,} {r.arena_bytes:>9,} {tensors:<22} "
                     f"{fits:<5}" + (f" ({r.note})" if r.note else ""))
    return "\n".join(lines)
