"""The one file policy: private atomic writes, locks, and the output guard.

Every file this tool writes holds user data (reports, snapshots, job ledgers),
so it is created readable by the owner only, and reaches its final name by one
atomic ``os.replace``: a crash never leaves half a file there, nor destroys the
previous one. Lock files are owner-only too.

Every command that writes a file asks `check_output` first. It refuses a path
that is any input of the job (input, mapping, schema, snapshot, a job file) and
a path that holds a file this tool did not write as that kind of output: an
earlier report may be replaced by a report, an earlier snapshot by a snapshot,
nothing else. Each output kind recognises its own files (`Recogniser`); the
refusal is a ConfigError (exit 2) and touches nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from migrate.errors import ConfigError, MigrateError

#: Says whether an existing file is one this tool wrote as a given output kind.
Recogniser = Callable[[Path], bool]


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output(
    path: Path,
    *,
    what: str,
    recognise: Recogniser,
    protected: Iterable[tuple[str, Path | None]] = (),
) -> None:
    """Refuse an output path that would replace something not ours to replace.

    ``what`` names the output in messages ("report file", "snapshot file");
    ``protected`` pairs a role ("the input file") with a path the job reads.
    """
    shown = f"{what} {str(path)!r}"
    for role, other in protected:
        if other is not None and same_file(path, other):
            raise ConfigError(f"{shown}: refused, that is {role}; choose another path")
    if path.is_dir():
        raise ConfigError(f"{shown}: is a directory; give a file name")
    if not path.parent.resolve().is_dir():
        raise ConfigError(f"{shown}: the directory {str(path.parent)!r} does not exist")
    if not path.exists() and not path.is_symlink():
        return
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise ConfigError(f"{shown}: cannot check it: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{shown}: refused, it is not a regular file")
    if path.stat().st_size == 0 or recognise(path):
        return  # an empty file loses nothing; our own output may be replaced
    raise ConfigError(
        f"{shown}: refused, it exists and is not a {what} written by "
        "cognito-migrate; choose another path or move that file away"
    )


def read_head(path: Path, size: int = 65536) -> bytes:
    """The first ``size`` bytes of a file (b"" when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def create_private(path: Path) -> None:
    """Create an empty owner-only file; OSError (FileExistsError...) as raised."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform allows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: Temporary files and folders of outputs being written, removed at exit if
#: still there: an interrupt can land anywhere, even between creating one and
#: the code that would clean it up.
_TEMPORARY: set[Path] = set()
_TEMPORARY_LOCK = threading.Lock()


def track_temporary(path: Path) -> None:
    """Remove ``path`` (file or folder) at exit unless `untrack_temporary` runs."""
    with _TEMPORARY_LOCK:
        _TEMPORARY.add(path)


def untrack_temporary(path: Path) -> None:
    """``path`` was moved into place or removed: leave it alone at exit."""
    with _TEMPORARY_LOCK:
        _TEMPORARY.discard(path)


def remove_temporaries() -> None:
    """Remove every tracked temporary file and folder (at exit, or before
    stopping at once)."""
    with _TEMPORARY_LOCK:
        leftovers = list(_TEMPORARY)
        _TEMPORARY.clear()
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


atexit.register(remove_temporaries)


class AtomicFile:
    """A private temporary file next to ``path`` that becomes ``path`` on commit.

    The temporary file is created with O_EXCL and mode 0o600 (``mkstemp``), so
    it is never readable by others, not even for a moment; ``discard`` (or a
    failed ``commit``) removes it and leaves any previous ``path`` as it was.
    """

    def __init__(self, path: Path, *, what: str = "file") -> None:
        self.path = path
        directory = path.parent
        try:
            fd, tmp = tempfile.mkstemp(
                dir=directory, prefix=f".{path.name}.", suffix=".tmp"
            )
        except OSError as error:
            raise ConfigError(
                f"{what} {str(path)!r}: cannot write in {str(directory)!r}: "
                f"{error.strerror}"
            ) from error
        #: Where the content goes until ``commit``.
        self.tmp = Path(tmp)
        track_temporary(self.tmp)
        self.handle: IO[bytes] | None = os.fdopen(fd, "wb")

    def commit(self) -> None:
        """Flush, sync and move the file to its final name."""
        try:
            if self.handle is not None:
                self.handle.flush()
                os.fsync(self.handle.fileno())
                self.handle.close()
                self.handle = None
            else:  # written by path (polars sinks): sync it all the same
                fd = os.open(self.tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            # A writer that replaced the file by path may have made it 0o644.
            os.chmod(self.tmp, 0o600)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        untrack_temporary(self.tmp)
        fsync_directory(self.path.parent)

    def close_handle(self) -> None:
        """Close the handle, for a writer that writes to ``tmp`` by path."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        """Remove the temporary file; the previous ``path`` stays as it was."""
        self.close_handle()
        self.tmp.unlink(missing_ok=True)
        untrack_temporary(self.tmp)


def write_private(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write an owner-only file atomically: ``write`` fills it, then it appears."""
    target = AtomicFile(path)
    try:
        assert target.handle is not None
        write(target.handle)
    except BaseException:
        target.discard()
        raise
    target.commit()


class FileLock:
    """An advisory lock held by one process, and a note of who holds it.

    ``path`` is the file locked: a lock file of its own (created owner-only),
    or, with ``note``, an existing file locked in place (a job's database, so
    that a symlink or a hard link to it names the same lock). The holder is
    written to ``note`` (else into ``path``), for the message another process
    gets. Neither is followed if it is a symlink, so a planted link cannot
    make the lock write over another file.
    """

    def __init__(self, path: Path, *, note: Path | None = None) -> None:
        self.path = path
        self.note = note
        self._fd: int | None = None

    def _open(self, *, create: bool) -> int:
        if self.note is not None:
            return os.open(self.path, os.O_RDONLY)
        flags = os.O_RDWR | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
        return os.open(self.path, flags, 0o600)

    def _read_note(self, fd: int) -> str:
        try:
            if self.note is not None:
                flags = os.O_RDONLY | os.O_NOFOLLOW
                note_fd = os.open(self.note, flags)
                try:
                    return os.read(note_fd, 200).decode(errors="replace").strip()
                finally:
                    os.close(note_fd)
            return os.pread(fd, 200, 0).decode(errors="replace").strip()
        except OSError:
            return ""

    def acquire(self, busy: Callable[[str], MigrateError]) -> None:
        """Take the lock or raise ``busy(holder)`` when another process has it."""
        try:
            fd = self._open(create=True)
        except OSError as error:
            raise ConfigError(
                f"cannot open the lock file {self.path}: {error.strerror}"
            ) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._read_note(fd) or "another process"
            os.close(fd)
            raise busy(holder) from None
        self._fd = fd
        text = f"process {os.getpid()}".encode()
        with contextlib.suppress(OSError):  # the note is only for messages
            if self.note is None:
                os.ftruncate(fd, 0)
                os.pwrite(fd, text, 0)
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                note_fd = os.open(self.note, flags, 0o600)
                try:
                    os.write(note_fd, text)
                finally:
                    os.close(note_fd)

    def holder(self) -> str | None:
        """Who holds the lock right now, or None."""
        try:
            fd = self._open(create=False)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return self._read_note(fd) or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        """Let go of the lock (the files stay, empty of meaning)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
