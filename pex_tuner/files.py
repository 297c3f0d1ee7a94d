"""Files: atomic writes with unique temporary names, content hashes, and table readers.

Every file pex-tuner writes goes through :func:`atomic_write` (or one of its wrappers), so a
reader sees the old file or the new one, never half of one, and two writers of the same file
never collide on a shared temporary name (each gets its own from :func:`tempfile.mkstemp`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pex_tuner.errors import InputDataError

__all__ = [
    "MODEL_FILE",
    "atomic_copy",
    "atomic_directory",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_table",
    "sha256_bytes",
    "sha256_file",
    "table_kind",
]

#: File name of a fitted CATE model (joblib) beside the artifacts and tuners that reference it.
MODEL_FILE = "effects.joblib"


def _temp_path(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> Path:
    """Write ``path`` by calling ``write(tmp)`` on a unique temporary file, then renaming it.

    The parent folder is created. If ``write`` raises, the temporary file is removed and the
    target is left as it was. Returns the target path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(target)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy the file ``src`` to ``dst`` atomically (see :func:`atomic_write`)."""
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Fill a fresh temporary folder, then put it in place of ``path`` (replacing a previous one).

    ``with atomic_directory(out) as tmp: ...`` writes into ``tmp``; on a clean exit ``tmp``
    becomes ``out``, on an exception it is removed and ``out`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            old.rmdir()
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def table_kind(path: str | os.PathLike[str]) -> str:
    """``"parquet"`` for ``.parquet`` / ``.pq`` files, ``"csv"`` otherwise."""
    return "parquet" if Path(path).suffix.lower() in (".parquet", ".pq") else "csv"


def read_table(path: str | os.PathLike[str], kind: str | None = None) -> Any:
    """Read a CSV or Parquet file into a pandas DataFrame.

    ``kind`` is ``"csv"`` or ``"parquet"``; None infers it from the suffix (:func:`table_kind`).
    Raises InputDataError naming the path when it is missing or cannot be parsed.
    """
    import pandas as pd

    path = Path(path)
    kind = table_kind(path) if kind is None else kind
    if not path.exists():
        raise InputDataError(f"data file '{path}' does not exist")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError, ImportError) as exc:
        raise InputDataError(f"cannot read {kind} file '{path}': {exc}") from exc
