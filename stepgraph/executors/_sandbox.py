"""Child side of the python executor's sandbox; see stepgraph/executors/python.py.

Run as `python -I -B _sandbox.py CONTROL_DIR`, never imported by stepgraph. It reads the
step's code, its dependencies and its limits from CONTROL_DIR, opens its report file, and
then, before any of the step's code runs, confines itself with what the kernel enforces:

1. a parent-death signal: the process is killed when the runtime that started it dies;
2. resource limits with soft = hard (address space, file size, CPU seconds, open files,
   no core dumps, and for a user other than root a process count);
3. an empty network namespace where the kernel allows one;
4. every capability given up, and no_new_privs;
5. Landlock: reading only Python's own directories, the system's shared libraries and a
   few harmless device files; reading and writing only the scratch folder; no TCP bind or
   connect; no signals and no abstract Unix sockets outside the sandbox (each as far as
   the kernel's Landlock ABI goes: file rules from 1, TCP from 4, scopes from 6);
6. seccomp: no new processes (threads are fine), no exec, no sockets (Unix socket pairs
   are fine), no signals to other processes, and none of the calls that reach other
   processes or the kernel's global state (ptrace, namespaces, mounts, keyrings, modules,
   BPF, io_uring, device nodes, clocks, reboot).

All of this is kernel state that nothing in the process can undo: the step's code may
rebind any name in this module, call any C function through ctypes or write anywhere in
its own memory, and the kernel still refuses. If Landlock or the seccomp filter cannot be
set up, the code is not run and the report says why (python.py turns that into a clear
error). Only the standard library may be used here: this runs in a bare interpreter.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import json
import linecache
import os
import platform
import resource
import signal
import stat
import struct
import sys
import sysconfig
import traceback
from typing import Any

STEP_FILE = "<step>"
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
CLONE_THREAD = 0x00010000
PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
EPERM, ENOSYS = 1, 38


class ConfinementError(Exception):
    """The kernel would not confine this process: the step's code must not run."""


# --- resource limits, network namespace, capabilities -------------------------------------


def _limit(kind: int, value: int) -> None:
    try:
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass


def _user_tasks(uid: int) -> int:
    """Processes and threads `uid` runs now: what RLIMIT_NPROC counts against."""
    count = 0
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def apply_limits(config: dict[str, Any]) -> None:
    """Kernel limits on this process. Threads are also held by RLIMIT_AS (each has a
    stack); Linux exempts root from RLIMIT_NPROC, and seccomp forbids new processes to
    every user, so the process count is a second fence for other users only."""
    _limit(resource.RLIMIT_AS, int(config["memory_bytes"]))
    _limit(resource.RLIMIT_FSIZE, int(config["file_bytes"]))
    _limit(resource.RLIMIT_CPU, int(config["cpu_seconds"]))
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 256)
    uid = os.getuid()
    if uid != 0:
        _limit(resource.RLIMIT_NPROC, _user_tasks(uid) + int(config["extra_processes"]))


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def isolate_network(libc: Any) -> bool:
    """Enter an empty network namespace; True when it worked."""
    if libc.unshare(CLONE_NEWNET) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return False
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        except OSError:
            pass
    return True


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities(libc: Any) -> bool:
    """Give up all capabilities for good (and no_new_privs); True when none are left."""
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfinementError("prctl(PR_SET_NO_NEW_PRIVS) failed")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):  # the bounding set; fails quietly past the kernel's last cap
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    return libc.capset(ctypes.byref(header), data) == 0


# --- Landlock -----------------------------------------------------------------------------

SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_MAKE_CHAR, FS_MAKE_BLOCK, FS_IOCTL_DEV = 1 << 6, 1 << 11, 1 << 15
# Every file-system right each Landlock ABI knows: 1-13 from ABI 1, REFER from 2,
# TRUNCATE from 3, IOCTL_DEV from 5.
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | (1 << 14) | FS_IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2
READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR

# Beyond Python's own directories: what the interpreter and harmless modules read.
SYSTEM_READABLE = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/usr/share/zoneinfo",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/mime.types",
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
)


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi(libc: Any) -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is disabled)."""
    version = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(0, int(version))


def python_roots(home: str) -> tuple[str, ...]:
    """Directories of the interpreter and its libraries, which the code may read. A root
    that contains the user's home (a Python installed with --prefix=$HOME) is dropped; the
    library directories inside it stay."""
    candidates = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    candidates.update(v for v in sysconfig.get_paths().values() if v)
    home = os.path.realpath(home) if home else ""
    roots: set[str] = set()
    for path in candidates:
        for form in (os.path.abspath(path), os.path.realpath(path)):
            inside_home = home and (home == form or home.startswith(form.rstrip("/") + "/"))
            if form != "/" and not inside_home:
                roots.add(form)
    return tuple(sorted(roots))


def _allow(libc: Any, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this system
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= _FILE_RIGHTS  # a rule on a file may only name rights on files
        rule = _PathBeneath(access, fd)
        if (
            libc.syscall(
                SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
            )
            != 0
        ):
            raise ConfinementError(
                f"Landlock refused a rule for {path}: {os.strerror(ctypes.get_errno())}"
            )
    finally:
        os.close(fd)


def apply_landlock(libc: Any, scratch: str, home: str) -> int:
    """Restrict this process's file system, TCP and scopes; the ABI version used."""
    abi = landlock_abi(libc)
    if abi < 1:
        raise ConfinementError(
            "the kernel has no Landlock (Linux 5.13 or later with Landlock enabled is needed)"
        )
    handled_fs = _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]
    fields = [handled_fs]
    if abi >= 4:
        fields.append(NET_BIND_TCP | NET_CONNECT_TCP)
    if abi >= 6:
        fields.append(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    attr = struct.pack(f"{len(fields)}Q", *fields)
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, len(attr), 0)
    if ruleset < 0:
        raise ConfinementError(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        for path in python_roots(home) + SYSTEM_READABLE:
            _allow(libc, ruleset, path, READ)
        _allow(libc, ruleset, "/dev/null", FS_READ_FILE | FS_WRITE_FILE)
        # everything in the scratch folder except device nodes and device ioctls
        _allow(libc, ruleset, scratch, handled_fs & ~(FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_IOCTL_DEV))
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise ConfinementError(f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return abi


# --- seccomp ------------------------------------------------------------------------------

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# System call numbers, from the kernel's unistd headers (x86_64: asm/unistd_64.h;
# aarch64: asm-generic/unistd.h). Denied outright, with EPERM:
_DENIED_COMMON = {
    # new programs, other processes' memory, signals by pid file descriptor
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "tkill",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    # all sockets but socket pairs: no network, no Unix sockets of the host (docker.sock)
    "socket",
    # namespaces and mounts
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # the kernel's global state
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "quotactl",
    "syslog",
    "vhangup",
    "fanotify_init",
    "personality",
    "name_to_handle_at",
    "open_by_handle_at",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "mknodat",
}
# From Linux 5.1 on, new system calls have one number on every architecture.
_UNIFIED = {
    "pidfd_send_signal": 424,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_open": 434,
    "clone3": 435,
    "pidfd_getfd": 438,
    "process_madvise": 440,
    "mount_setattr": 442,
}
SYSCALLS = {
    "x86_64": {
        **_UNIFIED,
        "socket": 41,
        "socketpair": 53,
        "clone": 56,
        "fork": 57,
        "vfork": 58,
        "execve": 59,
        "kill": 62,
        "ptrace": 101,
        "syslog": 103,
        "rt_sigqueueinfo": 129,
        "mknod": 133,
        "uselib": 134,
        "personality": 135,
        "vhangup": 153,
        "pivot_root": 155,
        "adjtimex": 159,
        "chroot": 161,
        "acct": 163,
        "settimeofday": 164,
        "mount": 165,
        "umount2": 166,
        "swapon": 167,
        "swapoff": 168,
        "reboot": 169,
        "sethostname": 170,
        "setdomainname": 171,
        "iopl": 172,
        "ioperm": 173,
        "init_module": 175,
        "delete_module": 176,
        "quotactl": 179,
        "tkill": 200,
        "clock_settime": 227,
        "tgkill": 234,
        "kexec_load": 246,
        "add_key": 248,
        "request_key": 249,
        "keyctl": 250,
        "mknodat": 259,
        "unshare": 272,
        "rt_tgsigqueueinfo": 297,
        "perf_event_open": 298,
        "fanotify_init": 300,
        "name_to_handle_at": 303,
        "open_by_handle_at": 304,
        "clock_adjtime": 305,
        "setns": 308,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "kcmp": 312,
        "finit_module": 313,
        "kexec_file_load": 320,
        "bpf": 321,
        "execveat": 322,
        "userfaultfd": 323,
    },
    "aarch64": {
        **_UNIFIED,
        "mknodat": 33,
        "umount2": 39,
        "mount": 40,
        "pivot_root": 41,
        "chroot": 51,
        "vhangup": 58,
        "quotactl": 60,
        "acct": 89,
        "personality": 92,
        "unshare": 97,
        "kexec_load": 104,
        "init_module": 105,
        "delete_module": 106,
        "clock_settime": 112,
        "syslog": 116,
        "ptrace": 117,
        "kill": 129,
        "tkill": 130,
        "tgkill": 131,
        "rt_sigqueueinfo": 138,
        "reboot": 142,
        "sethostname": 161,
        "setdomainname": 162,
        "settimeofday": 170,
        "adjtimex": 171,
        "socket": 198,
        "socketpair": 199,
        "add_key": 217,
        "request_key": 218,
        "keyctl": 219,
        "clone": 220,
        "execve": 221,
        "swapon": 224,
        "swapoff": 225,
        "rt_tgsigqueueinfo": 240,
        "perf_event_open": 241,
        "fanotify_init": 262,
        "name_to_handle_at": 264,
        "open_by_handle_at": 265,
        "clock_adjtime": 266,
        "setns": 268,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "kcmp": 272,
        "finit_module": 273,
        "bpf": 280,
        "execveat": 281,
        "userfaultfd": 282,
        "kexec_file_load": 294,
    },
}
_DENIED_X86_ONLY = {"fork", "vfork", "mknod", "uselib", "iopl", "ioperm"}

_LD_ABS_W, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW, RET_KILL_PROCESS = 0x7FFF0000, 0x80000000
_ARG0 = 16  # offset of args[0] (its low 32 bits on little-endian) in struct seccomp_data


def _errno(number: int) -> int:
    return 0x00050000 | number


def seccomp_program(machine: str, pid: int) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions: a linear list of checks, each of which
    returns or falls through to the next; what no check names is allowed."""
    numbers = SYSCALLS[machine]
    denied = _DENIED_COMMON | (_DENIED_X86_ONLY if machine == "x86_64" else set())
    prog = [
        (_LD_ABS_W, 0, 0, 4),  # arch
        (_JEQ, 1, 0, AUDIT_ARCH[machine]),
        (_RET, 0, 0, RET_KILL_PROCESS),  # another ABI (i386 on x86_64): never allowed
        (_LD_ABS_W, 0, 0, 0),  # syscall number
    ]
    if machine == "x86_64":  # the x32 ABI's numbers have bit 30 set
        prog += [(_JGE, 0, 1, 0x40000000), (_RET, 0, 0, _errno(EPERM))]
    prog += [(_JEQ, 0, 1, numbers["clone3"]), (_RET, 0, 0, _errno(ENOSYS))]  # C libraries
    # fall back to clone, whose flags a filter can read
    for name in sorted(denied):
        prog += [(_JEQ, 0, 1, numbers[name]), (_RET, 0, 0, _errno(EPERM))]
    # clone: threads only (CLONE_THREAD set); a new process is refused
    prog += [
        (_JEQ, 0, 4, numbers["clone"]),
        (_LD_ABS_W, 0, 0, _ARG0),
        (_JSET, 0, 1, CLONE_THREAD),
        (_RET, 0, 0, RET_ALLOW),
        (_RET, 0, 0, _errno(EPERM)),
    ]
    prog += [
        (_JEQ, 0, 4, numbers["socketpair"]),
        (_LD_ABS_W, 0, 0, _ARG0),
        (_JEQ, 0, 1, 1),  # AF_UNIX
        (_RET, 0, 0, RET_ALLOW),
        (_RET, 0, 0, _errno(EPERM)),
    ]
    # signals: to this process only (kill(0) is its own process group: it is alone there)
    for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        prog += [
            (_JEQ, 0, 5, numbers[name]),
            (_LD_ABS_W, 0, 0, _ARG0),
            (_JEQ, 1, 0, pid),
            (_JEQ, 0, 1, 0),
            (_RET, 0, 0, RET_ALLOW),
            (_RET, 0, 0, _errno(EPERM)),
        ]
        prog.append((_LD_ABS_W, 0, 0, 0))  # the syscall number again, for the next check
    prog.append((_RET, 0, 0, RET_ALLOW))
    return prog


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def apply_seccomp(libc: Any) -> None:
    machine = platform.machine()
    if machine not in SYSCALLS:
        raise ConfinementError(
            f"no seccomp filter for the {machine} architecture (x86_64 and aarch64 have one)"
        )
    prog = seccomp_program(machine, os.getpid())
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in prog)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(prog), ctypes.addressof(buffer))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise ConfinementError(f"seccomp: {os.strerror(ctypes.get_errno())}")


def confine(config: dict[str, Any]) -> dict[str, Any]:
    """Every layer, in order; what was in place (for the report). Raises
    ConfinementError when a required layer cannot be set up."""
    libc = _libc()
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise ConfinementError("prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(config["parent_pid"]):
        os._exit(1)  # the runtime died before the death signal was set: nobody waits
    apply_limits(config)
    if not config.get("confine", True):  # sandbox="none": trusted code, limits only
        return {"network_isolated": False, "capabilities_dropped": False}
    network_isolated = isolate_network(libc)
    capabilities_dropped = drop_capabilities(libc)
    abi = apply_landlock(libc, config["scratch"], config["home"])
    apply_seccomp(libc)
    return {
        "network_isolated": network_isolated,
        "capabilities_dropped": capabilities_dropped,
        "landlock_abi": abi,
        "seccomp": True,
    }


# --- running the code ---------------------------------------------------------------------


def _user_frames_only(exc: BaseException) -> str:
    """The traceback without the sandbox's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def describe_error(exc: BaseException) -> str:
    """One or two lines: where in the step's code it failed and the exception."""
    if isinstance(exc, SyntaxError) and exc.filename == STEP_FILE:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    last = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == STEP_FILE]
    if frames:
        frame = frames[-1]
        where = f"line {frame.lineno}" + (f": {frame.line.strip()}" if frame.line else "")
        return f"{last}\n  ({where})"
    return last


def _jsonable(value: Any, limit: int) -> Any:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        return None
    return value if len(text) <= limit else None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds: 10, not np.int64(10)."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        try:
            return value.item()
        except Exception:  # an exotic scalar: keep it as it is
            return value
    return value


def run_cell(code: str, namespace: dict[str, Any]) -> tuple[bool, Any]:
    """Run `code`; when its last statement is an expression, return (True, its value)."""
    linecache.cache[STEP_FILE] = (len(code), None, code.splitlines(True), STEP_FILE)
    tree = ast.parse(code, STEP_FILE)
    last: ast.expr | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body.pop().value  # type: ignore[attr-defined]
    exec(compile(tree, STEP_FILE, "exec"), namespace)
    if last is None:
        return False, None
    value = eval(compile(ast.Expression(last), STEP_FILE, "eval"), namespace)
    return value is not None, value


def main(control: str) -> None:
    with open(os.path.join(control, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(control, "code.py"), encoding="utf-8") as f:
        code = f.read()
    with open(os.path.join(control, "deps.json"), encoding="utf-8") as f:
        deps = json.load(f)
    report_file = open(os.path.join(control, "result.json"), "w", encoding="utf-8")  # noqa: SIM115
    limit = int(config["max_result_chars"])
    report: dict[str, Any] = {
        "has_result": False,
        "result": None,
        "result_text": None,
        "error": None,
        "traceback": None,
    }
    try:
        report.update(confine(config))
    except (ConfinementError, OSError, AttributeError) as exc:
        report["confinement_error"] = str(exc) or type(exc).__name__
        report_file.write(json.dumps(report))
        report_file.close()
        os._exit(0)
    sys.dont_write_bytecode = True
    sys.argv = [STEP_FILE]
    os.chdir(config["scratch"])

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, "deps": deps}
    try:
        has_result, value = run_cell(code, namespace)
        if has_result:
            value = _plain(value)
            text = value if isinstance(value, str) else repr(value)
            report.update(has_result=True, result=_jsonable(value, limit), result_text=text[:limit])
    except SystemExit as exc:
        if exc.code not in (None, 0):
            report["error"] = f"SystemExit: {exc.code}"
    except BaseException as exc:  # every failure of user code is reported
        report["error"] = describe_error(exc)
        report["traceback"] = _user_frames_only(exc)[-limit:]
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    try:
        report_file.write(json.dumps(report))
    except (TypeError, ValueError):
        report_file.write(json.dumps({**report, "result": None}))
    report_file.close()
    os._exit(0)  # skip user atexit handlers and non-daemon threads: the step is over


if __name__ == "__main__":
    main(sys.argv[1])
