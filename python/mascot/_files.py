"""Atomic file writing for the package and the benchmark scripts: a temporary file beside the
target, fsync, the mode a plain ``open()`` would give (0666 & ~umask; mkstemp makes 0600),
then a rename, so a reader sees the old file or the new one, never a part.  On any failure the
temporary file is removed and the target is untouched."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temp_file(path: Path) -> tuple[int, str]:
    """A new temp file next to ``path``: ``.NAME.XXXXXXXX.tmp`` with NAME cut to 64 characters,
    so the temp name stays far below the file system's name limit whatever ``path`` is."""
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.", suffix=".tmp")


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish(tmp: str, path: Path) -> None:
    """Gives the temp file the umask's mode and renames it over ``path``."""
    os.chmod(tmp, 0o666 & ~umask())
    os.replace(tmp, path)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes ``data`` (str as UTF-8, or bytes) to ``path`` atomically (see the module)."""
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
    path = Path(path)
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
