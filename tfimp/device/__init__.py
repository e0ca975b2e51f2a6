"""Device budgets: give the device's flash, RAM and latency, get a pruned model that fits.

`DeviceBudget` holds the numbers (from a board name with `budget_for`, a string with
`parse_budget`, or by hand); `tfimp.imp(..., device=budget)` runs hybrid rounds that remove
units while RAM or latency binds and prune weights while only flash does (`policy`), measuring
every round's exported model (`cost`) and stopping at the first that fits. `LatencyTable`
holds per-layer latencies measured once per target, from which unit cuts are predicted.
"""

from tfimp.device.budget import (
    ENCODINGS,
    RUNTIMES,
    TARGETS,
    DeviceBudget,
    LatencyTarget,
    budget_for,
    parse_budget,
)

__all__ = ["DeviceBudget", "DevicePolicy", "ENCODINGS", "LatencyTable", "LatencyTarget",
           "RUNTIMES", "TARGETS", "budget_for", "parse_budget"]


def __getattr__(name):
    if name == "DevicePolicy":
        from tfimp.device.policy import DevicePolicy

        return DevicePolicy
    if name == "LatencyTable":
        from tfimp.device.latency import LatencyTable

        return LatencyTable
    raise AttributeError(f"module 'tfimp.device' has no attribute {name!r}")
