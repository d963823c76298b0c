"""The python executor: real child processes, real limits, hostile code.

Every hostile test checks the effect, not just the message: the file that must not be
written does not exist, the listener that must not be reached got no connection, the
process that ran too long is gone. The fork tests only run code whose fork is refused
before it can happen (checked by test_fork_is_refused first, in file order).
"""

from __future__ import annotations

import asyncio
import os
import socket
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


# --- processes ---------------------------------------------------------------------------


def test_fork_is_refused() -> None:
    out = run_code("import os\nos.fork()\n'forked'")
    assert_refused(out, "PermissionError", "os.fork")


def test_fork_bomb_is_contained() -> None:
    out = run_code("import os\nwhile True:\n    os.fork()", timeout=10)
    assert_refused(out, "PermissionError")  # refused at once, not stopped by the time limit


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.system('true')",
        "import os\nos.execv('/bin/true', ['true'])",
        "import os\nos.posix_spawn('/bin/true', ['true'], {})",
        "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
        "import _posixsubprocess\n_posixsubprocess.fork_exec()",
        "import pty\npty.fork()",
    ],
)
def test_other_ways_to_start_a_process_are_refused(code: str) -> None:
    out = run_code(code)
    assert_refused(out, "sandbox")


def test_signalling_the_parent_is_refused() -> None:
    out = run_code("import os\nos.kill(os.getppid(), 0)")  # signal 0: harmless if it got through
    assert_refused(out, "signalling other processes is not allowed")


# --- network -----------------------------------------------------------------------------


def test_connecting_to_localhost_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        out = run_code(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)")
        assert_refused(out, "network access is not allowed")
        with pytest.raises(TimeoutError):
            listener.accept()


@pytest.mark.parametrize(
    "code",
    [
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
        "import socket\nsocket.getaddrinfo('localhost', 80)",
        "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9/')",
        "import socket\ns, _ = socket.socketpair()\ns.connect('/var/run/docker.sock')",
    ],
)
def test_other_network_access_is_refused(code: str) -> None:
    out = run_code(code)
    assert_refused(out, "network access is not allowed")


# --- files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "open(TARGET, 'w').write('escaped')",
        "import pathlib\npathlib.Path(TARGET).write_text('escaped')",
        "import os\nos.open(TARGET, os.O_WRONLY | os.O_CREAT)",
        "import shutil\nopen('here.txt', 'w').write('x')\nshutil.copy('here.txt', TARGET)",
        "import os\nopen('here.txt', 'w').write('x')\nos.rename('here.txt', TARGET)",
        "import os\nos.mkdir(TARGET)",
        "import os\nos.symlink('/etc/hostname', TARGET)",
        "import sqlite3\nsqlite3.connect(TARGET).execute('create table t(a)')",
        "import os\nos.chdir(os.path.dirname(TARGET))\nopen(os.path.basename(TARGET), 'w')",
    ],
)
def test_writing_outside_the_scratch_directory_is_refused(tmp_path: Path, code: str) -> None:
    target = tmp_path / "escape.txt"
    out = run_code(f"TARGET = {str(target)!r}\n{code}")
    assert_refused(out, "PermissionError", "sandbox")
    assert not target.exists()
    assert not target.is_symlink()


def test_changing_files_outside_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "keep.txt"
    victim.write_text("original")
    before = victim.stat()
    for code in [
        f"import os\nos.remove({str(victim)!r})",
        f"import os\nos.chmod({str(victim)!r}, 0o777)",
        f"import os\nos.utime({str(victim)!r}, (0, 0))",
        f"import os\nos.truncate({str(victim)!r}, 0)",
        f"open({str(victim)!r}, 'a').write('more')",
    ]:
        assert_refused(run_code(code), "sandbox")
    after = victim.stat()
    assert victim.read_text() == "original"
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)


@pytest.mark.parametrize(
    "code",
    [
        "open(SECRET).read()",
        "import pathlib\npathlib.Path(SECRET).read_bytes()",
        "import os\nos.read(os.open(SECRET, os.O_RDONLY), 100)",
        "import os\nos.chdir(os.path.dirname(SECRET))\nopen(os.path.basename(SECRET)).read()",
        "import os\nos.listdir(os.path.dirname(SECRET))",
        "import os\nfd = os.open(os.path.dirname(SECRET), os.O_RDONLY)\n"
        "os.read(os.open(os.path.basename(SECRET), os.O_RDONLY, dir_fd=fd), 100)",
        "import linecache\nlinecache.getline(SECRET, 1) or open(SECRET).read()",
    ],
)
def test_reading_outside_the_scratch_directory_is_refused(tmp_path: Path, code: str) -> None:
    secret = tmp_path / "home" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP-SECRET-VALUE")
    out = run_code(f"SECRET = {str(secret)!r}\n{code}")
    assert_refused(out, "sandbox")
    assert "TOP-SECRET-VALUE" not in out.output + str(out.data)


def test_relative_parent_paths_are_refused() -> None:
    out = run_code("open('../control/code.py').read()")
    assert_refused(out, "absolute path")


def test_the_users_home_cannot_be_listed() -> None:
    out = run_code(f"import os\nos.listdir({str(Path.home())!r})")
    assert_refused(out, "sandbox", "is not allowed")


# --- ways around the Python-level guard --------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import ctypes\nctypes.CDLL('libc.so.6').fork()",
        "import ctypes\nctypes.pythonapi.Py_GetVersion",
        "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))",
        "import gc\ngc.get_objects()",
        "import _xxsubinterpreters",
        "import sys\ndel sys.modules['_posixsubprocess']\nimport _posixsubprocess",
    ],
)
def test_escape_hatches_are_closed(code: str) -> None:
    out = run_code(code)
    assert_refused(out, "sandbox")


def test_a_device_node_cannot_be_made_even_around_the_guard() -> None:
    """Re-creating the posix module gets past the Python-level guard; the kernel must still
    refuse, because the child gave up its capabilities (this matters when running as root:
    a block device in the scratch directory would expose the whole disk)."""
    out = run_code(
        """
        import _imp, importlib.machinery, stat
        posix = _imp.create_builtin(importlib.machinery.ModuleSpec("posix", None))
        posix.mknod("disk", stat.S_IFBLK | 0o600, posix.makedev(8, 0))
        """
    )
    assert_refused(out, "PermissionError", "Operation not permitted")
    assert out.data["capabilities_dropped"] in (True, None)


def _native_module() -> str:
    """A standard-library module that is a shared library in this Python build."""
    import importlib

    for name in ("_json", "_bisect", "_csv", "math", "_struct"):
        if getattr(importlib.import_module(name), "__file__", "").endswith(".so"):
            return name
    pytest.skip("this Python has no standard-library extension module in a file")


def test_native_modules_cannot_be_loaded_from_the_scratch_directory() -> None:
    out = run_code(
        """
        import shutil, sys, importlib.util, NATIVE
        shutil.copy(NATIVE.__file__, "mine.so")
        spec = importlib.util.spec_from_file_location("NATIVE", "mine.so")
        importlib.util.module_from_spec(spec)
        """.replace("NATIVE", _native_module())
    )
    assert_refused(out, "native module")
