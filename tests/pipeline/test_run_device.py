"""`tfimp run --board`: device rounds in a recipe run, the Device budget section of the
report, and the C source for the board checked against it."""

import json

import pytest

from tfimp.pipeline import runner


@pytest.mark.slow
def test_run_with_a_board_writes_a_fitting_model_and_the_budget_table(tmp_path, capsys):
    code = runner.main(["lenet_300_100", "data.offline=true", "--smoke", "--board",
                        "cortex-m0plus-32k", "--workdir", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    device = report["device"]
    assert device["limits"] == {"flash": 262144, "ram": 32768}
    assert device["choice"]["fits"] and device["checked"]["fits"]
    assert device["checked"]["flash"] <= 262144 and device["checked"]["ram"] <= 32768
    assert device["rounds"][0]["fits"] is False  # the dense model is too large
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Device budget" in text and "| exported |" in text
    assert any(f.endswith("model_data.cc") for f in device["checked"]["files"])
