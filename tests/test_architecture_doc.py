"""docs/architecture.md, executed: each ```python block runs in a scratch folder, so the ways
it shows to add an executor, a backend and a check keep working."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.M | re.S)


def test_the_page_has_its_three_examples():
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("code", BLOCKS, ids=["executor", "backend", "check"])
def test_each_example_runs(code: str, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
