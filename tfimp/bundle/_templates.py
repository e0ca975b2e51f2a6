"""The templates in the top-level `deploy/` folder, and `{{name}}` substitution."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_FIELD = re.compile(r"\{\{\s*(\w+)\s*\}\}")
ENV_VAR = "TFIMP_DEPLOY_TEMPLATES"


def template_root() -> Path:
    """The `deploy/` folder: `$TFIMP_DEPLOY_TEMPLATES`, the source tree's, or the installed one.

    A wheel installs the templates as data files under `<prefix>/share/tfimp/deploy`.
    """
    candidates = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else [
        Path(__file__).resolve().parents[2] / "deploy",
        Path(sys.prefix) / "share" / "tfimp" / "deploy",
    ]
    for root in candidates:
        if (root / "rpi").is_dir():
            return root
    raise FileNotFoundError(
        f"The bundle templates were not found in {[str(c) for c in candidates]}. Set {ENV_VAR} "
        "to the `deploy/` folder of a tfimp source tree.")


def render(text: str, values: dict) -> str:
    """`text` with each `{{name}}` replaced by `values[name]`; unknown names raise KeyError."""
    missing = sorted({m.group(1) for m in _FIELD.finditer(text)} - set(values))
    if missing:
        raise KeyError(f"Template fields without a value: {missing}")
    return _FIELD.sub(lambda m: str(values[m.group(1)]), text)


def render_file(target: str, name: str, values: dict) -> str:
    """The template `deploy/<target>/<name>`, rendered with `values`."""
    return render((template_root() / target / name).read_text(), values)
