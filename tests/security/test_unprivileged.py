"""The sandbox attacks again, as an unprivileged user (CI runs the suite as root).

Root and other users meet different kernel paths: root is exempt from RLIMIT_NPROC and
owns most files, an unprivileged user needs a user namespace for the network namespace.
The attacks must fail for both, so as root this runs test_sandbox.py once more as
`nobody`, through util-linux `setpriv`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


def _as_nobody(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    setpriv = shutil.which("setpriv")
    assert setpriv is not None
    command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _interpreter(env: dict[str, str]) -> str | None:
    """A Python of this version that `nobody` can start: the venv's own interpreter often
    lives under /root (mode 700), the system's does not."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        # it must also start itself again, as the executor starts its sandboxed child
        check = "import subprocess, sys; subprocess.run([sys.executable, '-c', '0'], check=True)"
        if Path(candidate).exists() and _as_nobody(candidate, "-c", check, env=env).returncode == 0:
            return candidate
    return None


@pytest.mark.timeout(400)
@pytest.mark.skipif(sys.platform != "linux", reason="the sandbox confines on Linux only")
@pytest.mark.skipif(os.geteuid() != 0, reason="not root: the whole suite runs unprivileged")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="util-linux setpriv is missing")
def test_the_attacks_fail_for_an_unprivileged_user_too() -> None:
    home = tempfile.mkdtemp(prefix="stepgraph-nobody-")
    os.chmod(home, 0o777)
    try:
        env = {
            "HOME": home,
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            # the packages this suite imports, for an interpreter outside the venv
            "PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]]),
        }
        python = _interpreter(env)
        if python is None:
            pytest.skip(
                f"no Python {sys.version_info.major}.{sys.version_info.minor} "
                "that an unprivileged user can start"
            )
        done = _as_nobody(
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(REPO),
            str(REPO / "tests" / "security" / "test_sandbox.py"),
            env=env,
        )
        assert _as_nobody(python, "-c", "import os; print(os.geteuid())", env=env).stdout == (
            f"{NOBODY}\n"
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert " passed" in done.stdout and " failed" not in done.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)
