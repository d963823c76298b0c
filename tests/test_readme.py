"""The README, executed: every ```python and ```bash block runs, in order, in one scratch
folder with its own store, on the real embedded model, the way a new user pastes them.

Blocks that are not code are fenced as ```text (diagrams, output). The quickstart's
`make demo` and `make test` are the one exception: CI runs `make test` (.ci/run) and
../shared/tools/fresh_check.sh runs both on a fresh clone; from inside the suite they would
recurse, so here make only dry-runs them (`make -n`), which still fails on a missing target.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
CODE = ("python", "bash")


def readme_blocks() -> list[tuple[int, str, str]]:
    """(line, language, code) of every fenced block in the README."""
    text = (ROOT / "README.md").read_text()
    return [(text[: m.start()].count("\n") + 1, m[1], m[2]) for m in FENCE.finditer(text)]


def test_every_readme_block_is_code_or_marked_as_text():
    blocks = readme_blocks()
    assert blocks, "the README has no code blocks"
    unmarked = [line for line, lang, _ in blocks if lang not in (*CODE, "text")]
    assert not unmarked, f"README blocks at lines {unmarked}: fence them as python, bash or text"


def test_readme_links_and_pictures_point_at_files_in_the_repository():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://", "mailto:"))]
    assert local, "the README links to nothing in the repository"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def run_block(lang: str, code: str, cwd: Path, env: dict[str, str]):
    if lang == "python":
        command = [sys.executable, "-c", code]
    else:
        code = re.sub(r"^make (.+?)(\s+#.*)?$", rf"make -n -C {ROOT} \1", code, flags=re.M)
        command = ["bash", "-euo", "pipefail", "-c", code]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)


@pytest.mark.model
@pytest.mark.timeout(3600)
def test_readme_walkthrough(real_model, tmp_path):
    del real_model  # the fixture only skips this when the embedded model is not installed
    for name in ("stepgraph", "examples"):  # paths in the README are relative to the clone
        (tmp_path / name).symlink_to(ROOT / name)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "STEPGRAPH_HOME": str(tmp_path / "home"),
    }
    for line, lang, code in readme_blocks():
        if lang not in CODE:
            continue
        out = run_block(lang, code, tmp_path, env)
        assert out.returncode == 0, (
            f"README block at line {line} failed ({lang}, exit {out.returncode}):\n"
            f"{code}\n--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}"
        )
