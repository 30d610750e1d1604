"""Where scheduler commands run and job files live: the local machine or a login node over SSH.

The adapters never call ``subprocess`` or touch job directories directly; they go
through a :class:`CommandRunner`, so the same SLURM code drives a cluster from the
login node itself (:class:`LocalRunner`) or from a laptop (:class:`SSHRunner`, plain
``ssh host 'command'`` -- configure keys/ControlMaster in ``~/.ssh/config``).
Files are moved as one tar stream per job directory, so a remote submission costs
one round trip, and no shared filesystem is assumed.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from matloop.types import AdapterError

#: Exit status the remote ``read_file`` script uses for "no such file" (distinct from ssh's 255).
_MISSING = 44


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it ended."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        text = (self.stderr or self.stdout).strip()
        return f"`{shlex.join(self.argv)}` exited {self.returncode}: {text[-500:]}"


@runtime_checkable
class CommandRunner(Protocol):
    """Runs commands and moves job files on the machine that talks to the scheduler."""

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60.0) -> CommandResult: ...

    def put_files(self, directory: str, files: Mapping[str, str]) -> None:
        """Create ``directory`` (and parents) and write ``files`` (relative path -> text) into it."""
        ...

    def read_file(self, path: str) -> str | None:
        """The text of ``path``, or ``None`` when it does not exist."""
        ...


def _completed(argv: Sequence[str], proc: subprocess.CompletedProcess[bytes]) -> CommandResult:
    return CommandResult(
        argv=tuple(argv),
        returncode=proc.returncode,
        stdout=proc.stdout.decode(errors="replace"),
        stderr=proc.stderr.decode(errors="replace"),
    )


def _exec(argv: Sequence[str], stdin: bytes | None, timeout: float) -> CommandResult:
    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise AdapterError(f"cannot run {argv[0]!r}: not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise AdapterError(f"`{shlex.join(argv)}` did not answer within {timeout:g} s", transient=True) from exc
    return _completed(argv, proc)


class LocalRunner:
    """Commands run here, files are written here (the login node itself, or a single machine)."""

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        return _exec(argv, stdin, timeout)

    def put_files(self, directory: str, files: Mapping[str, str]) -> None:
        root = Path(directory)
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)  # atomic: a crash never leaves half a file

    def read_file(self, path: str) -> str | None:
        try:
            return Path(path).read_text(errors="replace")
        except FileNotFoundError:
            return None


class RemoteShellRunner:
    """Every command becomes one shell command line handed to ``transport`` (e.g. ``ssh host``).

    ``transport`` is the argv prefix that executes a shell string elsewhere: ``["ssh",
    "-o", "BatchMode=yes", "login1"]`` for a cluster, ``["bash", "-c"]`` to prove the
    seam on this machine.  Each call is a single round trip.
    """

    def __init__(self, transport: Sequence[str]) -> None:
        if not transport:
            raise ValueError("transport must name a command, e.g. ['ssh', 'login-node']")
        self.transport = list(transport)

    def command_line(self, argv: Sequence[str]) -> list[str]:
        """The local argv that runs ``argv`` remotely (quoted once, for the remote shell)."""
        return [*self.transport, shlex.join(argv)]

    def _shell(self, script: str, stdin: bytes | None, timeout: float) -> CommandResult:
        return _exec([*self.transport, script], stdin, timeout)

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        return _exec(self.command_line(argv), stdin, timeout)

    def put_files(self, directory: str, files: Mapping[str, str]) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for rel, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(rel)
                info.size = len(data)
                info.mode = 0o755 if rel.endswith(".sh") else 0o644
                tar.addfile(info, io.BytesIO(data))
        d = shlex.quote(directory)
        result = self._shell(f"mkdir -p {d} && tar -xf - -C {d}", buf.getvalue(), timeout=120)
        if not result.ok:
            raise AdapterError(f"cannot write job files to {directory}: {result.describe()}", transient=True)

    def read_file(self, path: str) -> str | None:
        p = shlex.quote(path)
        result = self._shell(f"if [ -f {p} ]; then cat {p}; else exit {_MISSING}; fi", None, timeout=60)
        if result.returncode == _MISSING:
            return None
        if not result.ok:
            raise AdapterError(f"cannot read {path}: {result.describe()}", transient=True)
        return result.stdout


class SSHRunner(RemoteShellRunner):
    """Commands run on a login node through ``ssh`` (non-interactive: keys, no passwords)."""

    def __init__(self, host: str, *, options: Sequence[str] = (), ssh: str = "ssh") -> None:
        if not host or host.startswith("-"):
            raise ValueError(f"invalid SSH host {host!r}")
        self.host = host
        super().__init__([ssh, "-o", "BatchMode=yes", *options, host])
