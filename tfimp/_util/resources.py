"""The data folders that ship inside the package: the recipes and the device bundle templates.

They live at the top level of the source tree (`recipes/`, `deploy/`); pyproject.toml maps them
to the packages `tfimp.recipes` and `tfimp.deploy`, so a wheel and an editable install import
them from inside tfimp. A source checkout used without installing it (`PYTHONPATH=.`) has no
such packages, and the folders are read where they stand.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def data_folder(package: str, source_folder: str) -> Path:
    """The folder of the data package `package`, or `SOURCE_ROOT/source_folder` in a checkout.

    Args:
        package: the installed name, e.g. `"tfimp.recipes"`.
        source_folder: the folder's name at the top of the source tree, e.g. `"recipes"`.

    Raises:
        FileNotFoundError: neither exists (a broken installation); the message says which.
    """
    local = SOURCE_ROOT / source_folder
    if (SOURCE_ROOT / "pyproject.toml").is_file() and local.is_dir():
        # A source checkout reads its own folders, even when another checkout is installed.
        return local
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        root = local
    if not isinstance(root, Path) or not root.is_dir():
        raise FileNotFoundError(
            f"tfimp's `{source_folder}/` folder was not found: the package {package!r} is not "
            f"installed as a folder and {SOURCE_ROOT / source_folder} does not exist. Reinstall "
            "tfimp (`pip install tfimp`) or run it from a complete source checkout.")
    return root
