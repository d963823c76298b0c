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

What confines the child is the kernel, not Python: `_sandbox.py` sets every layer up on
itself before the step's code runs, and none of them can be undone from inside (its
docstring lists them in order). In short:

- Files: Landlock. The code reads Python's own directories, the shared libraries and a
  few device files, and reads and writes only its scratch folder; the user's home, the
  project, `/etc/shadow` and the control files are out of reach, symlinks or not.
- Processes: seccomp allows threads but no new process and no exec; Landlock (ABI 6+)
  and seccomp refuse signals to any other process. The child gets a parent-death signal,
  so it dies with the runtime, and the whole process group is killed with SIGKILL at the
  time limit (the smaller of the step's timeout and the executor's, 10 s by default).
- Network: seccomp refuses every socket but a Unix socket pair (no TCP, UDP, raw,
  netlink or the host's Unix sockets such as docker.sock); Landlock (ABI 4+) refuses TCP
  bind and connect; where the kernel allows, an empty network namespace besides.
- Privileges: every capability dropped and no_new_privs, so root cannot make device nodes,
  mount, load modules or override file permissions; seccomp refuses ptrace, namespaces,
  mounts, keyrings, BPF, io_uring and the kernel's clocks.
- Resources: RLIMIT_AS (1 GiB by default: a larger allocation raises MemoryError),
  RLIMIT_FSIZE (64 MiB per file), RLIMIT_CPU, RLIMIT_NOFILE, no core dumps, and for
  users other than root RLIMIT_NPROC (Linux exempts root; seccomp stops new processes
  for everyone).
- Secrets: a fixed, minimal environment (no API keys, no PYTHONPATH), stdin closed.

Where Landlock or the seccomp filter cannot be set up (not Linux, a kernel before 5.13 or
with Landlock disabled, an architecture other than x86_64 or aarch64) the code is not run:
the step fails with a message that says so. `PythonExecutor(sandbox="none")` runs trusted
code with the limits only. What the sandbox does not do: share CPU fairly between
concurrent steps, cap disk use in total (only per file; the scratch folder is deleted
after the step), or hide metadata that Landlock does not cover (`os.stat` works on paths
it cannot open). docs/security.md has the threat model and the tests that prove each
layer.
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
from typing import Any, Literal

from stepgraph.executors.base import StepInput, StepOutput

SANDBOX_SCRIPT = Path(__file__).with_name("_sandbox.py")
SCRATCH_PREFIX = "stepgraph-python-"
OWNER_FILE = "owner.pid"
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
    computes = True  # see Executor
    model_writes = "code"  # see Executor
    planner_hint = (
        "writes and runs a short Python program for the instruction; use for counting, lists, "
        "dates, loops, or math one expression cannot do."
    )
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
        sandbox: Literal["kernel", "none"] = "kernel",
    ) -> None:
        """`sandbox="none"` runs the code with the limits but without the kernel's
        confinement: only for code you trust, on hosts that cannot confine it."""
        if sandbox not in ("kernel", "none"):
            raise ValueError(f'sandbox must be "kernel" or "none", not {sandbox!r}')
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.max_file_mb = max_file_mb
        self.max_output_chars = max_output_chars
        self.extra_processes = extra_processes
        self.python = python or sys.executable
        self.sandbox = sandbox
        sweep_scratch()  # what a killed runtime left behind

    async def run(self, step: StepInput) -> StepOutput:
        code = step.args.get("code")
        if not isinstance(code, str) or not code.strip():
            code = extract_code(step.instruction)
        if not code:
            return StepOutput(
                error='no Python code found; pass args {"code": "..."} or a ```python block',
                permanent=True,
            )
        timeout = min(self.timeout, step.timeout) if step.timeout > 0 else self.timeout
        return await self.execute(code, deps=dict(step.dependencies), timeout=timeout)

    async def execute(
        self, code: str, *, deps: dict[str, Any] | None = None, timeout: float | None = None
    ) -> StepOutput:
        """Run `code` in the sandbox and describe what happened."""
        timeout = self.timeout if timeout is None else timeout
        workdir = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX)).resolve()
        (workdir / OWNER_FILE).write_text(str(os.getpid()))
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
            "parent_pid": os.getpid(),
            "confine": self.sandbox == "kernel",
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
        permanent = False
        if reason := report.get("confinement_error"):
            error = (
                f"python steps cannot run confined on this host: {reason}. Run stepgraph on "
                "Linux 5.13+ (x86_64 or aarch64) with Landlock enabled, or, for code you "
                'trust, use PythonExecutor(sandbox="none")'
            )
            permanent = True
        elif timed_out:
            error = f"time limit of {timeout:g} s exceeded; the program was killed"
            permanent = True
        elif not report:
            error = _death_reason(returncode, stderr)
        elif error and error.startswith("SyntaxError"):
            permanent = True
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
            "landlock_abi": report.get("landlock_abi"),
            "seccomp": report.get("seccomp"),
        }
        return StepOutput(output=output, data=data, error=error, permanent=permanent)


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


def sweep_scratch(root: str | None = None) -> list[Path]:
    """Remove the scratch trees of runtimes that are gone (killed before their `finally`
    ran); a tree whose owner still runs is left alone. The trees removed."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"):
        try:
            owner = int((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if owner != os.getpid() and not _alive(owner):
            _remove_tree(path)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
