"""Child side of the python executor's sandbox; see stepgraph/executors/python.py.

Run as `python -I -B _sandbox.py CONTROL_DIR`, never imported by stepgraph. It reads the
step's code, its dependencies and its limits from CONTROL_DIR, then, before any user code:

1. sets resource limits on itself (address space, file size, CPU seconds, core dumps,
   processes) with soft = hard, so an unprivileged process cannot raise them again;
2. moves itself into a new network namespace when the kernel allows it (no interfaces
   but a loopback that is down, so nothing can be reached, not even 127.0.0.1);
3. gives up every capability and sets no_new_privs, so that even when stepgraph runs as
   root the code cannot make device nodes, mount, chroot, change owners or read other
   users' files (the kernel then checks plain owner/group/other permissions);
4. installs an audit hook (PEP 578). Audit hooks cannot be removed from Python code and
   see every file open, directory listing, file-system change, process creation, socket
   and ctypes call made through the interpreter; the hook refuses what the sandbox does
   not allow by raising PermissionError (ImportError for blocked modules);
5. replaces the few dangerous functions the interpreter does not audit (fork_exec,
   mkfifo, mknod, chroot, pidfd_send_signal).

Then it runs the code like a REPL cell (the value of a final expression is the result)
and writes a JSON report to CONTROL_DIR/result.json through a file opened before the hook.
Only the standard library may be used here: this runs in a bare interpreter.
"""

from __future__ import annotations

import _posixsubprocess  # noqa: F401  (loaded now, so that the hook can forbid loading it again)
import ast
import builtins
import ctypes
import json
import linecache
import os
import resource
import sys
import sysconfig
import traceback
from collections.abc import Callable
from typing import Any

STEP_FILE = "<step>"
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

# Modules whose import would reopen a door the hook closes: a second interpreter has no
# audit hook, fork_exec starts processes unaudited, and the others open files in C code.
BLOCKED_MODULES = frozenset(
    {
        "_posixsubprocess",
        "_xxsubinterpreters",
        "_xxinterpchannels",
        "_testcapi",
        "_testinternalcapi",
        "_posixshmem",
        "_dbm",
        "_gdbm",
        "_ssl",
        "_ctypes",
    }
)
PROCESS_EVENTS = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.startfile",
        "subprocess.Popen",
        "pty.spawn",
    }
)
NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
        "socket.sethostname",
    }
)
GUARD_EVENTS = frozenset(
    {
        "resource.setrlimit",
        "resource.prlimit",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "os.symlink",
        "os.link",
        "sqlite3.enable_load_extension",
        "sqlite3.load_extension",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
        "ctypes.call_function",
        "ctypes.cdata",
        "ctypes.string_at",
        "ctypes.wstring_at",
        "ctypes.PyObj_FromPtr",
    }
)
# event -> (index of a path it modifies, index of that path's dir_fd or None), one per path
WRITE_EVENTS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "os.mkdir": ((0, 2),),
    "os.rmdir": ((0, 1),),
    "os.remove": ((0, 1),),
    "os.rename": ((0, 2), (1, 3)),
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.utime": ((0, 3),),
    "os.truncate": ((0, None),),
    "os.chflags": ((0, None),),
    "os.lchflags": ((0, None),),
    "os.setxattr": ((0, None),),
    "os.removexattr": ((0, None),),
}
READ_EVENTS = frozenset({"os.listdir", "os.scandir", "os.getxattr", "os.listxattr"})
# Single files outside Python's directories that harmless standard modules read.
READABLE_FILES = (
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
    "/etc/mime.types",
    "/etc/localtime",
)


def _normalise(path: str, base: str) -> str:
    """An absolute path with '.' and '..' removed, by string rules only (no file access)."""
    if not path.startswith("/"):
        path = base + "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


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
    _limit(resource.RLIMIT_AS, int(config["memory_bytes"]))
    _limit(resource.RLIMIT_FSIZE, int(config["file_bytes"]))
    _limit(resource.RLIMIT_CPU, int(config["cpu_seconds"]))
    _limit(resource.RLIMIT_CORE, 0)
    uid = os.getuid()
    if uid != 0:  # root is exempt from RLIMIT_NPROC, so counting would be wasted work
        _limit(resource.RLIMIT_NPROC, _user_tasks(uid) + int(config["extra_processes"]))


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def isolate_network(libc: Any) -> bool:
    """Enter an empty network namespace; True when it worked."""
    unshare = getattr(libc, "unshare", None)
    if unshare is None:
        return False
    if unshare(CLONE_NEWNET) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
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
    prctl, capset = getattr(libc, "prctl", None), getattr(libc, "capset", None)
    if prctl is None or capset is None:
        return False
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):  # the bounding set; fails quietly past the kernel's last cap
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    return capset(ctypes.byref(header), data) == 0


def python_roots(home: str) -> tuple[str, ...]:
    """Directories of the interpreter and its libraries, which the code may read. A root
    that contains the user's home (a Python installed with --prefix=$HOME) is dropped; the
    library directories inside it stay."""
    candidates = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    candidates.update(v for v in sysconfig.get_paths().values() if v)
    roots: set[str] = set()
    for path in candidates:
        for form in (path, os.path.realpath(path)):
            norm = _normalise(form, "/")
            if norm != "/" and not (home and _inside(home, (norm,))):
                roots.add(norm)
    return tuple(sorted(roots))


def make_hook(
    scratch: str, read_roots: tuple[str, ...], code_roots: tuple[str, ...]
) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook. Everything it uses is bound now, in this closure, so that code that
    later patches os, posixpath or builtins cannot change what the hook decides."""
    getcwd, readlink, fspath, fsdecode = os.getcwd, os.readlink, os.fspath, os.fsdecode
    realpath, getpid, isdir = os.path.realpath, os.getpid, os.path.isdir
    dir_flags = os.O_DIRECTORY | getattr(os, "O_PATH", 0)
    isinstance_, str_, bytes_, int_ = isinstance, str, bytes, int
    perm, imperr = PermissionError, ImportError
    af_unix = 1
    write_roots = (scratch,)
    normalise, inside = _normalise, _inside

    def text(path: Any) -> str:
        if not isinstance_(path, str_ | bytes_):
            path = fspath(path)
        return fsdecode(path) if isinstance_(path, bytes_) else path

    def resolve(path: Any, dir_fd: Any = None) -> tuple[str, ...] | None:
        """The absolute path(s) an argument names, None for an open descriptor. A path with
        '..' also yields its resolved form: through a symlink, '..' leaves the link's target,
        and both forms must pass."""
        if isinstance_(path, int_):
            return None
        path = text(path)
        if not path.startswith("/"):
            base = getcwd()
            if isinstance_(dir_fd, int_) and dir_fd >= 0:  # None or -1: the cwd
                base = readlink(f"/proc/self/fd/{dir_fd}")
            path = base + "/" + path
        if ".." in path.split("/"):
            return (normalise(path, "/"), realpath(path))
        return (normalise(path, "/"),)

    def is_relative(path: Any) -> bool:
        return not text(path).startswith("/")

    def path_parts(path: Any) -> list[str]:
        return text(path).split("/")

    def fd_path(fd: int) -> tuple[str, ...]:
        try:
            return (readlink(f"/proc/self/fd/{fd}"),)
        except OSError:
            return ("?",)

    def check_read(paths: tuple[str, ...]) -> None:
        for path in paths:
            if not (
                path in READABLE_FILES or inside(path, write_roots) or inside(path, read_roots)
            ):
                raise perm(
                    f"sandbox: reading {path} is not allowed (only the scratch "
                    "directory and Python's own files)"
                )

    def check_write(paths: tuple[str, ...]) -> None:
        for path in paths:
            if not inside(path, write_roots):
                raise perm(
                    f"sandbox: writing {path} is not allowed (only inside the scratch "
                    f"directory {scratch})"
                )

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            target = resolve(path)
            if target is None:  # an open descriptor: was checked when it was opened
                return
            # The event does not carry os.open's dir_fd, so a relative path may really be
            # relative to a directory descriptor. Descriptors of directories outside the
            # scratch directory are refused and relative '..' is refused; then such a path
            # cannot leave the scratch directory (which has no symlinks: they are refused).
            if is_relative(path) and ".." in path_parts(path):
                raise perm("sandbox: use an absolute path instead of a relative one with '..'")
            if not inside(target[0], write_roots) and (flags & dir_flags or isdir(target[0])):
                raise perm(f"sandbox: opening the directory {target[0]} is not allowed")
            writes = bool(flags & _WRITE_FLAGS) or (
                isinstance_(mode, str_) and any(c in mode for c in "wax+")
            )
            if writes:
                check_write(target)
            else:
                check_read(target)
        elif event == "import":
            name, filename = args[0], args[1]
            if name in BLOCKED_MODULES:
                raise imperr(f"sandbox: module {name} is not available")
            if (
                isinstance_(filename, str_)
                and not filename.endswith(".py")
                and not all(inside(t, code_roots) for t in resolve(filename) or ())
            ):
                raise imperr(f"sandbox: native module {name} from {filename} is not allowed")
        elif event in WRITE_EVENTS:
            for at, dir_fd_at in WRITE_EVENTS[event]:
                dir_fd = args[dir_fd_at] if dir_fd_at is not None else None
                target = resolve(args[at], dir_fd)
                check_write(fd_path(args[at]) if target is None else target)
        elif event in READ_EVENTS:
            target = resolve(args[0] if args[0] is not None else ".")
            if target is not None:
                check_read(target)
        elif event in PROCESS_EVENTS:
            raise perm(f"sandbox: starting processes is not allowed ({event})")
        elif event in ("os.kill", "os.killpg"):
            if args[0] != getpid():
                raise perm("sandbox: signalling other processes is not allowed")
        elif event == "socket.__new__":
            if args[1] != af_unix:
                raise perm("sandbox: network access is not allowed")
        elif event in NETWORK_EVENTS:
            raise perm("sandbox: network access is not allowed")
        elif event == "sqlite3.connect":
            database = args[0]
            if isinstance_(database, bytes_):
                database = fsdecode(database)
            if isinstance_(database, str_) and (
                database in ("", ":memory:") or database.startswith("file::memory:")
            ):
                return
            if isinstance_(database, str_) and database.startswith("file:"):
                database = database[5:].split("?", 1)[0].removeprefix("//")
            check_write(resolve(database) or ("?",))
        elif event == "ctypes.dlopen":
            name = args[0]
            target = resolve(name) if isinstance_(name, str_ | bytes_) else None
            if target is None or not all(inside(t, code_roots) for t in target):
                raise perm("sandbox: loading native libraries is not allowed")
        elif event in GUARD_EVENTS:
            raise perm(f"sandbox: {event} is not allowed")

    return hook


def _refuse(what: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(f"sandbox: {what} is not allowed")

    return refused


def install_guards(scratch: str, home: str) -> None:
    roots = python_roots(home)
    hook = make_hook(scratch, roots + ("/usr/share/zoneinfo",), roots)
    posix = sys.modules["posix"]
    for name in ("mkfifo", "mknod", "chroot"):
        refused = _refuse(f"os.{name}")
        setattr(os, name, refused)
        setattr(posix, name, refused)
    sys.modules["_posixsubprocess"].fork_exec = _refuse("starting processes")
    signal_module = sys.modules.get("_signal")
    if signal_module is not None and hasattr(signal_module, "pidfd_send_signal"):
        signal_module.pidfd_send_signal = _refuse("signalling other processes")
    sys.addaudithook(hook)


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

    apply_limits(config)
    libc = _libc()
    report["network_isolated"] = isolate_network(libc)
    report["capabilities_dropped"] = drop_capabilities(libc)
    del libc
    sys.dont_write_bytecode = True
    sys.argv = [STEP_FILE]
    install_guards(config["scratch"], config["home"])

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
