"""The templates in the top-level `deploy/` folder, and `{{name}}` substitution."""

from __future__ import annotations

import re
from pathlib import Path

from tfimp._util.resources import data_folder

_FIELD = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def template_root() -> Path:
    """The `deploy/` folder of templates (installed as the package `tfimp.deploy`)."""
    return data_folder("tfimp.deploy", "deploy")


def render(text: str, values: dict) -> str:
    """`text` with each `{{name}}` replaced by `values[name]`; unknown names raise KeyError."""
    missing = sorted({m.group(1) for m in _FIELD.finditer(text)} - set(values))
    if missing:
        raise KeyError(f"Template fields without a value: {missing}")
    return _FIELD.sub(lambda m: str(values[m.group(1)]), text)


def render_file(target: str, name: str, values: dict) -> str:
    """The template `deploy/<target>/<name>`, rendered with `values`."""
    return render((template_root() / target / name).read_text(), values)
