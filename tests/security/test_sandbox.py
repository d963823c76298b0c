"""Hostile code against the python executor's sandbox, which the kernel enforces.

Every attack checks its effect, not a message: the file that must not be written does
not exist, the secret is not in anything the step returned, the listener got no
connection, the process is gone. These run as whoever runs the suite (root in CI);
test_unprivileged.py runs this file again as an unprivileged user.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.executors.python import SCRATCH_PREFIX, PythonExecutor, sweep_scratch

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox confines on Linux only"),
]


def run_code(code: str, *, timeout: float = 20.0) -> StepOutput:
    step = StepInput(
        step_id="s1", instruction="", args={"code": textwrap.dedent(code)}, timeout=timeout
    )
    return asyncio.run(PythonExecutor(timeout=30).run(step))


def refused(out: StepOutput, *words: str) -> None:
    assert not out.ok, f"the attack succeeded: {out.output!r}"
    for word in words:
        assert word in (out.error or ""), out.error


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file like ~/.ssh/id_rsa: readable by the user stepgraph runs as."""
    path = tmp_path / "home" / ".ssh" / "id_rsa"
    path.parent.mkdir(parents=True)
    path.write_text("TOP-SECRET-KEY")
    return path


def test_every_layer_is_in_place() -> None:
    out = run_code("1")
    assert out.ok, out.error
    assert out.data["landlock_abi"] >= 1
    assert out.data["seccomp"] is True
    assert out.data["capabilities_dropped"] is True


# --- the attack that broke the audit-hook sandbox -----------------------------------------


def test_rebinding_the_sandbox_rule_tables_changes_nothing(tmp_path: Path, secret: Path) -> None:
    """Four lines rebound the old hook's tables in __main__ and then wrote outside, read
    /etc/shadow and an SSH key, and started a process that outlived the step."""
    target = tmp_path / "escaped.txt"
    marker = f"stepgraph-escape-{os.getpid()}"
    out = run_code(
        f"""
        import __main__, os, subprocess
        for name in dir(__main__):
            if name.isupper() or name.startswith("_"):
                try:
                    setattr(__main__, name, type(getattr(__main__, name))())
                except Exception:
                    pass
        __main__.READABLE_FILES = ("/etc/shadow", {str(secret)!r})
        results = []
        for attempt in (
            lambda: open({str(target)!r}, "w").write("x"),
            lambda: open("/etc/shadow").read(),
            lambda: open({str(secret)!r}).read(),
            lambda: subprocess.Popen(["setsid", "sleep", "300", {marker!r}]),
        ):
            try:
                results.append(repr(attempt()))
            except OSError as exc:
                results.append(type(exc).__name__)
        results
        """
    )
    assert out.ok, out.error
    assert out.data["result"] == ["PermissionError"] * 4, out.data["result"]
    assert not target.exists()
    assert "TOP-SECRET-KEY" not in str(out.data)
    assert _processes_with(marker) == []


# --- memory and native calls --------------------------------------------------------------


def test_ctypes_memory_writes_and_raw_system_calls_meet_the_kernel(secret: Path) -> None:
    """ctypes.memmove and memset are not audited; with a kernel sandbox there is nothing in
    the process to corrupt that would help: raw system calls are refused all the same."""
    out = run_code(
        f"""
        import ctypes, os
        buf = ctypes.create_string_buffer(64)
        ctypes.memset(buf, 0x41, 63)
        ctypes.memmove(buf, b"overwritten", 11)
        libc = ctypes.CDLL(None, use_errno=True)
        results = {{
            "memory": buf.value[:11].decode(),
            "fork": libc.syscall(57 if os.uname().machine == "x86_64" else 220, 17, 0, 0, 0),
            "open_secret": libc.open({str(secret).encode()!r}, os.O_RDONLY),
            "open_shadow": libc.open(b"/etc/shadow", os.O_RDONLY),
            "unshare": libc.unshare(0x10000000),
            "ptrace": libc.syscall(  # PTRACE_ATTACH to the runtime
                101 if os.uname().machine == "x86_64" else 117, 16, os.getppid(), 0, 0),
        }}
        results
        """
    )
    assert out.ok, out.error
    result = out.data["result"]
    assert result["memory"] == "overwritten"
    assert {k: v for k, v in result.items() if k != "memory"} == {
        "fork": -1,
        "open_secret": -1,
        "open_shadow": -1,
        "unshare": -1,
        "ptrace": -1,
    }


# --- processes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    os.fork()",
        "import ctypes\nlibc = ctypes.CDLL(None)\nwhile libc.fork() >= 0:\n    pass\n"
        "raise PermissionError('fork failed')",
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.execv('/bin/true', ['true'])",
        "import os\nos.posix_spawn('/bin/true', ['true'], {})",
        "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
        "import pty\npty.fork()",
    ],
)
def test_fork_bombs_and_new_processes_are_refused_at_once(code: str) -> None:
    started = time.monotonic()
    out = run_code(code, timeout=10)
    refused(out)
    assert out.error.split(":")[0] in ("PermissionError", "OSError"), out.error
    assert "time limit" not in (out.error or "")  # refused, not stopped by the clock
    assert time.monotonic() - started < 10


def test_a_shell_cannot_be_started(tmp_path: Path) -> None:
    target = tmp_path / "by-shell.txt"
    out = run_code(f"import os\nos.system('touch {target}')")
    assert out.ok and out.output != "0", out.output  # system() reports that it failed
    assert not target.exists()


def test_threads_still_work() -> None:
    out = run_code(
        "import threading\nseen = []\nts = [threading.Thread(target=seen.append, args=(i,))"
        " for i in range(8)]\n[t.start() for t in ts]; [t.join() for t in ts]\nsorted(seen)"
    )
    assert out.data["result"] == list(range(8)), out.error


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.kill(os.getppid(), 0)",
        "import os\nos.kill(-1, 0)",
        "import os\nos.kill(1, 0)",
    ],
)
def test_signalling_other_processes_is_refused(code: str) -> None:
    refused(run_code(code), "PermissionError")


def test_a_device_node_cannot_be_made() -> None:
    """As root this would expose the whole disk; capabilities and seccomp both refuse."""
    out = run_code('import os, stat\nos.mknod("disk", stat.S_IFBLK | 0o600, os.makedev(8, 0))')
    refused(out, "PermissionError")


# --- memory, files ------------------------------------------------------------------------


def test_ten_gigabytes_raise_memory_error() -> None:
    out = run_code("block = bytearray(10 * 2**30)")
    refused(out, "MemoryError", "memory limit is 1024 MiB")


@pytest.mark.parametrize(
    "code",
    [
        "open(TARGET, 'w').write('escaped')",
        "import os\nos.open(TARGET, os.O_WRONLY | os.O_CREAT)",
        "import shutil\nopen('here.txt', 'w').write('x')\nshutil.copy('here.txt', TARGET)",
        "import os\nopen('here.txt', 'w').write('x')\nos.rename('here.txt', TARGET)",
        "import os\nos.mkdir(TARGET)",
        "import os\nos.symlink('/etc/hostname', TARGET)",
        "import os\nos.link('/etc/hostname', TARGET)",
        "import sqlite3\nsqlite3.connect(TARGET).execute('create table t(a)')",
        "import os\nos.chdir(os.path.dirname(TARGET))\nopen(os.path.basename(TARGET), 'w')",
        "import os\nos.symlink(os.path.dirname(TARGET), 'out')\nopen('out/escape.txt', 'w')",
    ],
)
def test_writing_outside_the_scratch_folder_is_refused(tmp_path: Path, code: str) -> None:
    target = tmp_path / "escape.txt"
    out = run_code(f"TARGET = {str(target)!r}\n{code}")
    refused(out)  # PermissionError, or sqlite's "unable to open database file"
    assert not target.exists()
    assert not target.is_symlink()


def test_changing_files_outside_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "keep.txt"
    victim.write_text("original")
    before = victim.stat()
    for code in [
        f"import os\nos.remove({str(victim)!r})",
        f"import os\nos.truncate({str(victim)!r}, 0)",
        f"open({str(victim)!r}, 'a').write('more')",
        f"open({str(victim)!r}, 'w')",
    ]:
        refused(run_code(code), "PermissionError")
    assert victim.read_text() == "original"
    assert victim.stat().st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize(
    "code",
    [
        "open(SECRET).read()",
        "import os\nos.read(os.open(SECRET, os.O_RDONLY), 100)",
        "import os\nos.chdir(os.path.dirname(SECRET))\nopen(os.path.basename(SECRET)).read()",
        "import os\nos.listdir(os.path.dirname(SECRET))",
        "import os\nos.symlink(SECRET, 'link')\nopen('link').read()",
        "import linecache\nlinecache.getline(SECRET, 1) or open(SECRET).read()",
        "open('../control/code.py').read()",
    ],
)
def test_reading_outside_is_refused(secret: Path, code: str) -> None:
    out = run_code(f"SECRET = {str(secret)!r}\n{code}")
    refused(out, "PermissionError")
    assert "TOP-SECRET-KEY" not in out.output + str(out.data)


@pytest.mark.skipif(not Path("/etc/shadow").exists(), reason="this system has no /etc/shadow")
def test_etc_shadow_is_unreadable_even_as_root() -> None:
    out = run_code("open('/etc/shadow').read()")
    refused(out, "PermissionError")
    assert "root:" not in out.output + str(out.data)


def test_the_users_home_cannot_be_listed() -> None:
    refused(run_code(f"import os\nos.listdir({str(Path.home())!r})"), "PermissionError")


# --- network ------------------------------------------------------------------------------


def test_connecting_to_localhost_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        out = run_code(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)")
        refused(out, "PermissionError")
        with pytest.raises(TimeoutError):
            listener.accept()


def test_the_hosts_unix_sockets_are_unreachable(tmp_path: Path) -> None:
    """Like /var/run/docker.sock: a Unix socket the user may connect to."""
    path = tmp_path / "host.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        listener.settimeout(0.3)
        out = run_code(
            f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})"
        )
        refused(out, "PermissionError")
        with pytest.raises(TimeoutError):
            listener.accept()


@pytest.mark.parametrize(
    "code",
    [
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
        "import socket\nsocket.socket(socket.AF_INET6, socket.SOCK_STREAM)",
        "import socket\nsocket.socket(socket.AF_NETLINK, socket.SOCK_RAW)",
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind('\\0stepgraph-abstract')",
        "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9/', timeout=2)",
    ],
)
def test_other_network_access_is_refused(code: str) -> None:
    out = run_code(code)
    assert not out.ok
    assert "PermissionError" in out.error or "Operation not permitted" in out.error, out.error


# --- nothing outlives its step or its runtime --------------------------------------------


def test_a_step_past_its_time_limit_leaves_nothing_running() -> None:
    out = run_code(
        "import os\nprint(os.getpid(), flush=True)\nimport time\ntime.sleep(120)", timeout=1
    )
    refused(out, "time limit of 1 s exceeded")
    with pytest.raises(ProcessLookupError):
        os.kill(int(out.data["stdout"].split()[0]), 0)


RUNTIME = """
import asyncio, sys
from stepgraph.executors.python import PythonExecutor
code = "import os, time\\nprint(os.getpid(), flush=True)\\ntime.sleep(120)"
asyncio.run(PythonExecutor(timeout=100).execute(code))
"""


def _sandbox_children(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"_sandbox.py" in cmdline:
                children.append(int(entry.name))
    return children


def test_the_step_dies_with_its_runtime_and_its_scratch_is_swept(tmp_path: Path) -> None:
    """The runtime is SIGKILLed mid-step: its child must not sleep on for its 100 s limit,
    and the next executor removes the scratch folder the dead runtime left."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    runtime = subprocess.Popen([sys.executable, "-c", RUNTIME], env=env)
    try:
        deadline = time.monotonic() + 30
        while not (children := _sandbox_children(runtime.pid)):
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        time.sleep(0.5)  # past the child's set-up, into the step's sleep
        runtime.send_signal(signal.SIGKILL)
        runtime.wait()
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{pid}").exists() for pid in children):
            assert time.monotonic() < deadline, "the step outlived its runtime"
            time.sleep(0.05)
    finally:
        runtime.kill()
    left = list(tmp_path.glob(SCRATCH_PREFIX + "*"))
    assert left, "a SIGKILLed runtime cannot clean up; the sweep is what this checks"
    assert sweep_scratch(str(tmp_path)) == left
    assert list(tmp_path.glob(SCRATCH_PREFIX + "*")) == []


def test_the_sweep_leaves_live_runtimes_alone(tmp_path: Path) -> None:
    mine = tmp_path / (SCRATCH_PREFIX + "live")
    mine.mkdir()
    (mine / "owner.pid").write_text(str(os.getppid()))  # pytest's parent: alive
    stranger = tmp_path / (SCRATCH_PREFIX + "stranger")
    stranger.mkdir()  # no owner file: not ours to judge
    assert sweep_scratch(str(tmp_path)) == []
    assert mine.exists() and stranger.exists()
