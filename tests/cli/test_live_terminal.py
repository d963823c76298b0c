"""`stepgraph run` in a real terminal (a pty), as a person watches it: the live table with
times, a failed check's reason, and the final unverified line. The CLI and the runtime are
the real ones; only the model is scripted (a planner reply and an answer that breaks the
instruction's sentence count however often it is revised)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time

import pytest

DRIVER = textwrap.dedent(
    """
    import sys
    import stepgraph.cli as cli
    from stepgraph import ScriptedBackend

    PLAN = '{"steps": [{"id": "s1", "depends_on": [], "executor": "llm", '\\
        '"instruction": "Describe eggs."}]}'

    def reply(request):
        system = request.messages[0].content if request.messages else ""
        if system.startswith("You are a planner"):
            return PLAN
        return "Eggs are cheap. Eggs are round. Eggs are good."

    cli._backend = lambda spec: ScriptedBackend(responder=reply)
    sys.argv = ["stepgraph", "run", "Describe eggs in at least 5 sentences.", "--db", sys.argv[1]]
    cli.main()
    """
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")


def _screen(args: list[str], env: dict[str, str], timeout: float = 120.0) -> tuple[str, int]:
    """Run `args` with stdout and stderr on a pty; everything it wrote, and its exit code."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(args, stdin=secondary, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the child closed the pty
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(primary)
    code = proc.wait(timeout=10)
    return ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")), code


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pty")
def test_a_person_sees_times_the_failed_check_and_unverified(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    screen, code = _screen([sys.executable, str(driver), str(tmp_path / "s.db")], env)
    assert code == 0, screen  # an unverified answer is still an answer
    # the lone llm step is the direct answer: its row ends done, not pending
    final_table = screen[screen.rindex("┏") :]
    assert re.search(r"✓ │ s1\s+│ llm\s+│\s+\d+\.\ds", final_table), final_table
    assert re.search(r"\d+\.\d\s*s\b", screen), screen  # times
    assert "min_sentences" in screen and "3 sentences; at least 5 required" in screen
    assert re.search(r"unverified:.*min_sentences", screen), screen
    assert "Eggs are cheap." in screen
