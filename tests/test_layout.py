"""The test tree: pytest imports test files by their basename (no packages), so two files of
the same name in different folders make the second fail to collect."""

from collections import Counter
from pathlib import Path


def test_test_files_have_unique_basenames():
    names = Counter(p.name for p in Path(__file__).parent.rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
