"""The python executor: real child processes running ordinary programs, within their
limits. Hostile code is in tests/security/."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest

from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.executors.python import PythonExecutor, extract_code

pytestmark = pytest.mark.timeout(60)


def run_code(
    code: str,
    *,
    deps: dict[str, str] | None = None,
    timeout: float = 20.0,
    executor: PythonExecutor | None = None,
) -> StepOutput:
    step = StepInput(
        step_id="s2",
        instruction="run the program",
        args={"code": textwrap.dedent(code)},
        dependencies=deps or {},
        timeout=timeout,
    )
    return asyncio.run((executor or PythonExecutor(timeout=30)).run(step))


def assert_refused(out: StepOutput, *words: str) -> None:
    assert not out.ok, out.output
    for word in words:
        assert word in (out.error or ""), out.error


# --- ordinary programs -------------------------------------------------------------------


def test_last_expression_is_the_result() -> None:
    out = run_code("x = 6 * 7\nx")
    assert out.ok, out.error
    assert out.output == "42"
    assert out.data["result"] == 42
    assert out.data["stdout"] == ""


def test_printed_output_is_the_result_when_there_is_no_expression() -> None:
    out = run_code("for i in range(3):\n    print(i)")
    assert out.ok, out.error
    assert out.output == "0\n1\n2"
    assert out.data["result"] is None


def test_printed_output_and_result_both_appear() -> None:
    out = run_code("print('working')\n'done'")
    assert out.output == "working\ndone"
    assert out.data["stdout"] == "working\n"
    assert out.data["result"] == "done"


def test_dependencies_stdlib_and_scratch_files() -> None:
    out = run_code(
        """
        import json, math, statistics
        prices = json.loads(deps["s1"])
        with open("prices.txt", "w") as f:
            f.write("\\n".join(str(p) for p in prices))
        with open("prices.txt") as f:
            read_back = [float(line) for line in f]
        print("mean", statistics.mean(read_back))
        round(math.sqrt(sum(read_back)), 3)
        """,
        deps={"s1": "[4, 9, 23]"},
    )
    assert out.ok, out.error
    assert out.output == "mean 12.0\n6.0"
    assert out.data["result"] == 6.0


def test_a_none_result_is_no_result() -> None:
    out = run_code("x = [1, 2]\nx.append(3)")
    assert out.ok
    assert out.output == ""
    assert out.data["result"] is None


def test_code_from_a_fenced_block_in_the_instruction() -> None:
    step = StepInput(
        step_id="s1",
        instruction="Count the words.\n```python\nlen('a b c'.split())\n```\nThen report.",
    )
    out = asyncio.run(PythonExecutor().run(step))
    assert (out.output, out.error) == ("3", None)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("```py\nprint(1)\n```", "print(1)"),
        ("total = sum([1, 2])\nprint(total)", "total = sum([1, 2])\nprint(total)"),
        ("Compute the average of the list", None),
        ("hello", None),
        ("", None),
    ],
)
def test_extract_code(text: str, code: str | None) -> None:
    assert extract_code(text) == code


def test_no_code_is_an_error() -> None:
    out = asyncio.run(PythonExecutor().run(StepInput(step_id="s1", instruction="Think hard")))
    assert_refused(out, "no Python code")


def test_an_exception_reports_its_line() -> None:
    out = run_code("a = 1\nb = a / 0\nb")
    assert_refused(out, "ZeroDivisionError: division by zero", "line 2", "a / 0")
    assert "_sandbox" not in out.data["traceback"]


def test_a_syntax_error_is_reported() -> None:
    out = run_code("def f(:\n    pass")
    assert_refused(out, "SyntaxError", "line 1")


def test_sys_exit_zero_is_success_and_nonzero_an_error() -> None:
    assert run_code("print('bye')\nimport sys\nsys.exit(0)").output == "bye"
    assert_refused(run_code("import sys\nsys.exit(3)"), "SystemExit: 3")


def test_threads_and_asyncio_work() -> None:
    out = run_code(
        """
        import asyncio, threading
        seen = []
        t = threading.Thread(target=seen.append, args=("thread",))
        t.start(); t.join()
        async def main():
            await asyncio.sleep(0.01)
            return "loop"
        seen.append(asyncio.run(main()))
        seen
        """
    )
    assert out.output == "['thread', 'loop']", out.error


def test_output_is_cut_at_the_limit() -> None:
    out = run_code("print('x' * 100_000)", executor=PythonExecutor(max_output_chars=1000))
    assert out.ok
    assert out.output.count("x") == 1000
    assert "[output cut at 1000 characters]" in out.output


def test_scratch_directory_is_the_cwd_and_is_removed() -> None:
    out = run_code("import os, tempfile\n[os.getcwd(), os.environ['HOME'], tempfile.gettempdir()]")
    assert out.ok, out.error
    cwd, home, tmp = out.data["result"]
    assert cwd == home == tmp
    assert not Path(cwd).exists()


def test_environment_is_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPGRAPH_TEST_API_KEY", "sk-secret")
    out = run_code("import os\nrepr(os.environ.get('STEPGRAPH_TEST_API_KEY'))")
    assert out.output == "None"


def test_steps_run_concurrently() -> None:
    executor = PythonExecutor()

    code = "import time\nstart = time.monotonic()\ntime.sleep(1)\nf'{start} {time.monotonic()}'"

    async def three() -> list[StepOutput]:
        steps = [StepInput(step_id=f"s{i}", instruction="", args={"code": code}) for i in range(3)]
        return await asyncio.gather(*(executor.run(s) for s in steps))

    spans = [tuple(map(float, out.output.split())) for out in asyncio.run(three())]
    # overlap, not speed: every step started before any step ended (CLOCK_MONOTONIC is shared
    # by all processes), which holds however slow the host is
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans


# --- limits ----------------------------------------------------------------------------


def test_infinite_loop_is_killed_at_the_time_limit() -> None:
    out = run_code("import os\nprint(os.getpid(), flush=True)\nwhile True:\n    pass", timeout=1)
    assert_refused(out, "time limit of 1 s exceeded")
    pid = int(out.data["stdout"].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_sleeping_past_the_time_limit_is_killed() -> None:
    out = run_code("import time\ntime.sleep(30)", executor=PythonExecutor(timeout=1))
    assert_refused(out, "time limit of 1 s exceeded")


def test_huge_allocation_raises_memory_error() -> None:
    out = run_code("data = bytearray(10**10)\nlen(data)")
    assert_refused(out, "MemoryError", "memory limit is 1024 MiB")


def test_file_size_limit() -> None:
    out = run_code(
        "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (3 * 2**20))",
        executor=PythonExecutor(max_file_mb=1),
    )
    assert_refused(out, "File too large")
