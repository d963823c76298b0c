"""Run a short Python program for a step, in a separate, fenced-in process.

The planner gives counting, data wrangling and multi-step arithmetic to this executor,
because a small model that writes a five-line program is right more often than one that
does the work in its head. The code is written by a model, so it is treated as untrusted.

How it runs: a fresh temporary directory holds a scratch folder (the code's working
directory, HOME and TMPDIR) and the control files. The child is `python -I -B _sandbox.py`
in its own session (process group), with stdin closed, stdout and stderr captured and an
environment that holds nothing from ours (no API keys, no PYTHONPATH). `_sandbox.py` sets
the limits and guards up before the step's code runs (see its docstring for the order);
the child sets its limits on itself rather than in a `preexec_fn`, which is unsafe in a
process with threads, as the runtime is.
The code runs like a notebook cell: if its last statement is an expression, that value
is the result. The outputs of the step's dependencies are in the dict `deps`.

What the sandbox guarantees (enforced by the kernel, whatever the code does):

- Wall time: the whole process group is killed with SIGKILL at the time limit (the
  smaller of the step's timeout and the executor's, 10 s by default), and RLIMIT_CPU
  stops a CPU-bound child even if this process were to die first.
- Memory: RLIMIT_AS (1 GiB by default); a larger allocation raises MemoryError.
- File size: RLIMIT_FSIZE (64 MiB by default) for every file it writes.
- No secrets from the environment: the child gets a fixed, minimal environment
  (no API keys, no PYTHONPATH), and stdin is closed.
- No network, where the kernel allows a new network namespace (as root, or with
  unprivileged user namespaces): the child has no usable interface, not even loopback.
  `data["network_isolated"]` says whether this layer was in place for a run.
- No capabilities (`data["capabilities_dropped"]`): the child gives up all of them and
  sets no_new_privs, so even when stepgraph runs as root the code cannot make device
  nodes, mount, chroot, load kernel modules, trace other users' processes, or read and
  write files that ordinary permissions deny to its user. Files owned by that user stay
  open to it as far as the kernel is concerned: for root that is most of the system, so
  run stepgraph as an unprivileged user where that matters.
- For an unprivileged user, RLIMIT_NPROC caps new processes and threads at 32 beyond
  what the user runs already (Linux exempts root from RLIMIT_NPROC).

What it enforces in Python (an audit hook, PEP 578, plus a few replaced functions);
this holds against ordinary and careless code, such as a model writes:

- no new processes: fork, subprocess, os.system, exec*, spawn*, posix_spawn, pty;
- no sockets except Unix socket pairs (asyncio needs those); no DNS, connect or bind;
- creating, writing, renaming, deleting and chmod-ing files only inside the scratch
  directory; no symlinks or hard links at all;
- reading files and listing folders only inside the scratch directory and Python's own
  installation (its prefixes and library folders), so the user's home, the project and
  the control files cannot be read; directories outside the scratch directory cannot
  be opened (their descriptors would make `dir_fd` paths unverifiable) and relative
  paths with '..' are refused;
- no signals to other processes, no raising of resource limits, no ctypes calls, no
  native modules from outside Python's installation, no sub-interpreters, no gc
  introspection (which could reach the hook's state).

What it does not guarantee:

- CPython is not a security boundary. Code that corrupts the interpreter's memory
  (crafted bytecode, interpreter bugs), or re-creates built-in modules through
  `_imp.create_builtin` to get the original `mknod`, `mkfifo`, `chroot` or
  `pidfd_send_signal` back, gets past the Python-level rules. The kernel-level limits
  above still hold then; files fall back to the ordinary permissions of the user
  stepgraph runs as, processes of that same user can be signalled, and without a
  network namespace the network is open. Run stepgraph as an unprivileged user, or in
  a container, when the code may come from a hostile source.
- Native libraries that open files themselves rather than through Python (HDF5, for
  one) are not checked. Metadata is not hidden: `os.stat`, `os.path.exists` and
  `os.readlink` work on any path. Python's own installation, including the packages in
  its site-packages, is readable.
- Disk use is limited per file, not in total (the scratch directory is deleted after
  the step), and CPU is not shared fairly between concurrent steps.
- On systems other than Linux the namespace, capability and /proc-based parts are
  skipped, and RLIMIT_AS may not be enforced.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from stepgraph.executors.base import StepInput, StepOutput

SANDBOX_SCRIPT = Path(__file__).with_name("_sandbox.py")
_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str | None:
    """The program in a step's instruction: the first fenced block, or the whole text
    when it parses as Python and does something (a bare word is not a program)."""
    match = _FENCE.search(text)
    if match:
        return match.group(1).strip("\n") or None
    stripped = text.strip()
    if not stripped:
        return None
    try:
        tree = ast.parse(stripped)
    except (SyntaxError, ValueError):
        return None
    meaningful = (
        ast.Call,
        ast.Assign,
        ast.AugAssign,
        ast.Import,
        ast.ImportFrom,
        ast.For,
        ast.While,
        ast.FunctionDef,
        ast.BinOp,
        ast.ListComp,
        ast.Subscript,
    )
    if any(isinstance(node, meaningful) for node in ast.walk(tree)):
        return stripped
    return None


class PythonExecutor:
    """Runs untrusted Python code in a child process; see the module docstring for what
    the sandbox guarantees."""

    name = "python"
    description = (
        "run a short Python 3 program (standard library only; no network, no files "
        "outside its folder); its last expression or its printed output is the result; "
        'earlier results are in the dict deps. args: {"code": "print(sum(range(10)))"}'
    )

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        memory_mb: int = 1024,
        max_file_mb: int = 64,
        max_output_chars: int = 20_000,
        extra_processes: int = 32,
        python: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.max_file_mb = max_file_mb
        self.max_output_chars = max_output_chars
        self.extra_processes = extra_processes
        self.python = python or sys.executable

    async def run(self, step: StepInput) -> StepOutput:
        code = step.args.get("code")
        if not isinstance(code, str) or not code.strip():
            code = extract_code(step.instruction)
        if not code:
            return StepOutput(
                error='no Python code found; pass args {"code": "..."} or a ```python block'
            )
        timeout = min(self.timeout, step.timeout) if step.timeout > 0 else self.timeout
        return await self.execute(code, deps=dict(step.dependencies), timeout=timeout)

    async def execute(
        self, code: str, *, deps: dict[str, Any] | None = None, timeout: float | None = None
    ) -> StepOutput:
        """Run `code` in the sandbox and describe what happened."""
        timeout = self.timeout if timeout is None else timeout
        workdir = Path(tempfile.mkdtemp(prefix="stepgraph-python-")).resolve()
        try:
            return await self._execute(code, deps or {}, timeout, workdir)
        finally:
            _remove_tree(workdir)

    async def _execute(
        self, code: str, deps: dict[str, Any], timeout: float, workdir: Path
    ) -> StepOutput:
        scratch = workdir / "scratch"
        scratch.mkdir()
        control = workdir / "control"
        control.mkdir()
        config = {
            "scratch": str(scratch),
            "home": os.path.expanduser("~"),
            "memory_bytes": self.memory_mb * 2**20,
            "file_bytes": self.max_file_mb * 2**20,
            "cpu_seconds": max(1, math.ceil(timeout) + 1),
            "extra_processes": self.extra_processes,
            "max_result_chars": self.max_output_chars,
        }
        (control / "config.json").write_text(json.dumps(config))
        (control / "code.py").write_text(code, encoding="utf-8")
        (control / "deps.json").write_text(json.dumps(deps, default=str), encoding="utf-8")
        env = {
            "PATH": os.defpath,
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(scratch),
            # Numeric libraries start a thread per core otherwise, each with its own memory.
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        proc = await asyncio.create_subprocess_exec(
            self.python,
            "-I",
            "-B",
            str(SANDBOX_SCRIPT),
            str(control),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=scratch,
            env=env,
            start_new_session=True,
        )
        limit = self.max_output_chars
        readers = asyncio.gather(_read_capped(proc.stdout, limit), _read_capped(proc.stderr, limit))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
        except BaseException:  # cancelled: the run was stopped; leave nothing behind
            readers.cancel()
            raise
        finally:
            _kill_group(proc.pid)  # also whatever it started, if anything got through
            if proc.returncode is None:
                await proc.wait()
        try:
            (stdout, cut_out), (stderr, _) = await asyncio.wait_for(readers, 5)
        except TimeoutError:  # a grandchild that escaped still holds the pipes
            readers.cancel()
            stdout, cut_out, stderr = "", False, ""
        if cut_out:
            stdout += f"\n[output cut at {limit} characters]"
        return self._describe(
            control / "result.json", proc.returncode, timed_out, timeout, stdout, stderr
        )

    def _describe(
        self,
        result_file: Path,
        returncode: int | None,
        timed_out: bool,
        timeout: float,
        stdout: str,
        stderr: str,
    ) -> StepOutput:
        report: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            report = json.loads(result_file.read_text(encoding="utf-8"))
        error: str | None = report.get("error")
        if timed_out:
            error = f"time limit of {timeout:g} s exceeded; the program was killed"
        elif not report:
            error = _death_reason(returncode, stderr)
        elif error and error.startswith("MemoryError"):
            first, newline, rest = error.partition("\n")
            error = f"{first} (the memory limit is {self.memory_mb} MiB){newline}{rest}"
        has_result = bool(report.get("has_result"))
        result_text = report.get("result_text") if has_result else None
        if has_result and stdout.strip():
            output = f"{stdout.rstrip()}\n{result_text}"
        elif has_result:
            output = str(result_text)
        else:
            output = stdout.rstrip("\n")
        data = {
            "stdout": stdout,
            "result": report.get("result") if report.get("result") is not None else result_text,
            "error": error,
            "traceback": report.get("traceback"),
            "stderr": stderr,
            "network_isolated": report.get("network_isolated"),
            "capabilities_dropped": report.get("capabilities_dropped"),
        }
        return StepOutput(output=output, data=data, error=error)


async def _read_capped(stream: asyncio.StreamReader | None, limit: int) -> tuple[str, bool]:
    """Read a pipe to its end, keeping the first `limit` characters (roughly: bytes)."""
    if stream is None:
        return "", False
    kept = bytearray()
    cut = False
    while chunk := await stream.read(65536):
        room = limit * 4 - len(kept)  # UTF-8 has at most 4 bytes a character
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            cut = True
    text = kept.decode("utf-8", errors="replace")
    if len(text) > limit:
        text, cut = text[:limit], True
    return text, cut


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _death_reason(returncode: int | None, stderr: str) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        reason = f"the program was killed by {name}"
        if name == "SIGXCPU":
            reason += " (CPU time limit)"
    else:
        reason = f"the program ended with exit status {returncode} before reporting a result"
    tail = stderr.strip().splitlines()[-3:]
    return reason + (": " + " | ".join(tail) if tail else "")


def _remove_tree(path: Path) -> None:
    """Delete a scratch tree even where the code removed its own write permissions."""

    def make_writable_and_retry(func: Any, target: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
            func(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)
