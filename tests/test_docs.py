"""The API reference (mkdocs + mkdocstrings) builds from the docstrings without a warning, and
names every public object, so a renamed or removed name breaks the suite, not the site."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import stepgraph

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_reference_builds_strictly(tmp_path):
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    page = (site / "api" / "runtime" / "index.html").read_text()
    for name in ("Runtime", "resume", "astream", "RunResult"):
        assert name in page


def test_every_public_name_has_a_reference_entry():
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= {m.split(".")[-1] for m in re.findall(r"^::: (\S+)", page.read_text(), re.M)}
    if "errors" in documented:  # the whole module, every error class with it
        documented |= {"StepgraphError", "PlanError"}
    missing = sorted(set(stepgraph.__all__) - documented)
    assert not missing, f"add these to docs/api/*.md: {missing}"
