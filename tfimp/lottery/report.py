"""What an IMP run shows: a progress bar and a row per round, history files, plots."""

from __future__ import annotations

import csv
import io
import json
import pathlib

from tfimp._util.io import atomic_write_text

__all__ = ["RoundPrinter", "write_history", "write_plots"]

_COLUMNS = ("round", "sparsity", "remaining", "metric", "delta", "epochs", "spent", "seconds")


class RoundPrinter:
    """Prints one table row per finished round and, at verbose 1, a Keras progress bar across
    rounds."""

    def __init__(self, metric: str, rounds: int, verbose: int, channels: bool = False):
        self.metric, self.rounds, self.verbose = metric, rounds, verbose
        self.channels = channels  # a last column: the fraction of channels removed
        self._header_done = False
        self._bar = None

    def _progress(self, done: int, row: dict) -> None:
        import keras

        if self._bar is None:
            self._bar = keras.utils.Progbar(self.rounds + 1, unit_name="round",
                                            stateful_metrics=["sparsity", self.metric])
        self._bar.update(done, values=[("sparsity", row["sparsity"]),
                                       (self.metric, row[f"val_{self.metric}"])])

    def _header(self) -> None:
        if not self._header_done:
            widths = (5, 9, 10, 10, 8, 6, 6, 8)
            names = list(_COLUMNS)
            names[3] = f"val_{self.metric}"[:10]
            names += ["channels"] if self.channels else []
            print("  ".join(n.rjust(w) for n, w in zip(names, widths + (8,))))
            self._header_done = True

    def row(self, row: dict, dense: float | None) -> None:
        if not self.verbose:
            return
        self._header()
        value = row[f"val_{self.metric}"]
        delta = 0.0 if dense is None else value - dense
        print(f"{row['round']:>5}  {row['sparsity']:>9.2%}  {row['remaining']:>10}  "
              f"{value:>10.4f}  {delta:>+8.4f}  {row['epochs']:>6}  "
              f"{row.get('epochs_total', row['epochs']):>6}  {row['seconds']:>8.1f}"
              + (f"  {row.get('channel_sparsity', 0.0):>8.2%}" if self.channels else "")
              + ("  (beyond the budget: retried from the last good round)"
                 if row.get("accepted") is False else ""))
        if self.verbose == 1:  # a bar only where it redraws in place (2: logs and files)
            self._progress(row["round"] + 1, row)

    def replay(self, history: list[dict], dense: float | None) -> None:
        for row in history:
            self.row(row, dense)


def _flat(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k != "layers"}
    out.update({f"sparsity[{k}]": v for k, v in row.get("layers", {}).items()})
    return out


def write_history(folder: pathlib.Path, history: list[dict]) -> None:
    """`history.json` (as recorded) and `history.csv` (one column per layer's sparsity)."""
    atomic_write_text(folder / "history.json", json.dumps(history, indent=2))
    rows = [_flat(r) for r in history]
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "history.csv", buf.getvalue())


def write_plots(folder: pathlib.Path, history: list[dict], metric: str, dense: float) -> list:
    """Metric vs remaining weights (with the dense line), and per-layer sparsity per round.

    Returns the written paths; none when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    paths = []
    remaining = [100 * (1 - r["sparsity"]) for r in history]
    values = [r[f"val_{metric}"] for r in history]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(remaining, values, "o-", label="IMP")
    ax.axhline(dense, color="gray", linestyle="--", label="dense")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel(f"val_{metric}")
    ax.legend()
    fig.tight_layout()
    paths.append(folder / f"{metric}_vs_remaining.png")
    fig.savefig(paths[-1], dpi=100)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name in history[-1].get("layers", {}):
        ax.plot([r["round"] for r in history], [r["layers"].get(name, 0.0) for r in history],
                "o-", label=name)
    ax.set_xlabel("round")
    ax.set_ylabel("sparsity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(folder / "layer_sparsity.png")
    fig.savefig(paths[-1], dpi=100)
    return paths
