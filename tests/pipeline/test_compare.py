"""`tfimp run --compare gradual`: IMP beside gradual pruning on the same data and epochs."""

import pytest

from tfimp.pipeline.compare import COMPARE_TARGETS
from tfimp.pipeline.runner import main, run


def test_compare_gradual_runs_each_sparsity_with_the_imp_runs_epochs(tmp_path):
    report = run("lenet_300_100", workdir=tmp_path, smoke=True, compare="gradual")
    c = report.comparison
    spent = sum(h["epochs"] for h in report.history)
    chosen = round(report.best_round["sparsity"], 4)
    assert [r["target"] for r in c["rows"]] == sorted({*COMPARE_TARGETS, chosen} - {0.0})
    for row in c["rows"]:
        assert row["gradual_epochs"] == spent == c["imp_epochs"]
        assert row["gradual_sparsity"] == pytest.approx(row["target"], abs=0.01)
    assert c["dense"] == report.dense_metric  # one reference for both
    text = report.markdown()
    assert "IMP vs gradual magnitude pruning (equal epochs)" in text
    assert f"IMP spent {spent} epochs" in text
    assert "epochs to reach that round" in text


def test_compare_names_the_strategies_it_knows(tmp_path, capsys):
    with pytest.raises(ValueError, match="Argument `compare` must be one of"):
        run("lenet_300_100", workdir=tmp_path, smoke=True, compare="cyclic")
    with pytest.raises(SystemExit):
        main(["--smoke", "--compare", "cyclic"])
    assert "invalid choice: 'cyclic'" in capsys.readouterr().err
