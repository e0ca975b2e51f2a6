"""`tfimp search` refuses bad input with one clear line and exit status 2, writing nothing:
unknown keys, empty or contradictory spaces, unreachable storage or Ray address, a storage
that holds a study of another recipe."""

import socket

import pytest

pytest.importorskip("optuna")

from tfimp.search import cli, engine  # noqa: E402
from tfimp.search import study as study_lib  # noqa: E402


def _refused(capsys, tmp_path, *argv, expect: str):
    workdir = tmp_path / "search"
    code = cli.main(["lenet_300_100", "--smoke", "--workdir", str(workdir), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("tfimp search: error: ")
    assert expect in err[0], err[0]
    assert not workdir.exists()
    return err[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unknown_key(capsys, tmp_path):
    line = _refused(capsys, tmp_path, "imp.rat=0.2,0.4", expect="Search key `imp.rat`")
    assert "imp.rate" in line  # the close match is suggested


def test_value_of_the_wrong_type(capsys, tmp_path):
    _refused(capsys, tmp_path, "imp.rounds=4,many", expect="imp.rounds")


def test_empty_dimension(capsys, tmp_path):
    _refused(capsys, tmp_path, "imp.rate=,", expect="at least one value")


def test_every_field_fixed_is_an_empty_space(capsys, tmp_path):
    from tfimp.pipeline.recipe import load_recipe
    from tfimp.search.space import default_space

    fixed = [f"{k}={'none' if v[0] is None else v[0]}"
             for k, v in default_space(load_recipe("lenet_300_100")).items()]
    _refused(capsys, tmp_path, *fixed, expect="at least one searched field")


def test_contradictory_space(capsys, tmp_path):
    _refused(capsys, tmp_path, "imp.strategy=gradual", "imp.distill=dense,teacher",
             expect="contradictory")


def test_range_out_of_order(capsys, tmp_path):
    _refused(capsys, tmp_path, "imp.ramp=0.5..0.1", expect="low end is below its high end")


def test_unknown_objective(capsys, tmp_path):
    _refused(capsys, tmp_path, "--objective", "drop,size", expect="Argument `objective`")


def test_unreachable_storage(capsys, tmp_path):
    url = f"postgresql://tfimp:secret@127.0.0.1:{_closed_port()}/tfimp"
    line = _refused(capsys, tmp_path, "--storage", url, expect="Argument `storage`")
    assert "secret" not in line


def test_storage_in_a_missing_folder(capsys, tmp_path):
    _refused(capsys, tmp_path, "--storage", f"sqlite:///{tmp_path}/no/such/folder/s.db",
             expect="Argument `storage`")
    assert not (tmp_path / "no").exists()


def test_unreachable_ray_address(capsys, tmp_path):
    _refused(capsys, tmp_path, "--ray", f"127.0.0.1:{_closed_port()}", expect="ray")


def test_study_of_another_recipe_in_the_same_storage(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    other = engine.plan("mnist1d_cnn", smoke=True, storage=url, workdir=tmp_path / "other")
    store = study_lib.storage(url, 5)
    study_lib.open_study(store, other.settings)
    before = (tmp_path / "shared.db").read_bytes()
    _refused(capsys, tmp_path, "--storage", url, expect="of recipe 'mnist1d_cnn'")
    assert (tmp_path / "shared.db").read_bytes() == before


def test_worker_processes_from_python_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="Argument `workers`"):
        engine.search("lenet_300_100", smoke=True, workers=2, workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()
