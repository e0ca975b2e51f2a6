"""`imp(on_round=...)`: called with each saved round, replayed on resume, and an exception
it raises stops the run where a rerun resumes it (a search's pruner relies on both)."""

import pytest

import tfimp
from helpers_imp import builder, toy_data


class Stop(Exception):
    pass


def test_on_round_sees_each_round_and_its_replay(tmp_path):
    data = toy_data()
    seen = []

    def stop_after_round_1(row, dense):
        seen.append((row["round"], dense))
        if row["round"] == 1:
            raise Stop

    kwargs = dict(rounds=3, rate=0.5, epochs_per_round=1, workdir=str(tmp_path), verbose=0)
    with pytest.raises(Stop):
        tfimp.imp(builder(), data, data, on_round=stop_after_round_1, **kwargs)
    assert [r for r, _ in seen] == [0, 1]
    dense = seen[0][1]
    assert dense is not None and all(d == dense for _, d in seen)

    replayed = []
    result = tfimp.imp(builder(), data, data, on_round=lambda row, d: replayed.append(
        row["round"]), **kwargs)
    assert replayed == [0, 1, 2, 3]  # rounds 0-1 from the run folder, 2-3 trained now
    assert [row["round"] for row in result.history] == [0, 1, 2, 3]
