"""What a wheel ships: every package, the recipes and every bundle template file."""

import fnmatch
from pathlib import Path

import pytest

from tfimp._util.resources import data_folder
from tfimp.bundle._templates import template_root
from tfimp.pipeline.recipe import available, recipes_dir

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")


def _setuptools() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def _source(package: str, package_dir: dict) -> Path:
    if package in package_dir:
        return ROOT / package_dir[package]
    return ROOT.joinpath(*package.split("."))


def test_every_package_is_listed_and_exists():
    config = _setuptools()
    listed, package_dir = set(config["packages"]), config.get("package-dir", {})
    on_disk = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "tfimp").rglob("__init__.py")}
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to pyproject's packages"
    assert {"tfimp.recipes", "tfimp.deploy"} <= listed
    for package in listed:
        assert (_source(package, package_dir) / "__init__.py").is_file(), package


def test_no_data_files_and_every_template_file_is_package_data():
    config = _setuptools()
    assert "data-files" not in config
    patterns = config["package-data"]["tfimp.deploy"]
    files = [p.relative_to(ROOT / "deploy").as_posix() for p in (ROOT / "deploy").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    missing = [f for f in files if f != "__init__.py"
               and not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert files and missing == []
    for name in ("Makefile", "main.cc", "model_check.h", "tflm.cmake"):
        assert f"micro/{name}" in files


def test_the_checkout_finds_recipes_and_templates():
    assert recipes_dir() == ROOT / "recipes"
    assert "lenet_300_100" in available() and "__init__" not in available()
    assert template_root() == ROOT / "deploy"
    assert (template_root() / "micro" / "Makefile").is_file()
    assert (template_root() / "rpi" / "run.py").is_file()


def test_a_missing_data_folder_says_so():
    with pytest.raises(FileNotFoundError, match="no_such_folder/` folder was not found"):
        data_folder("tfimp.no_such_package", "no_such_folder")
