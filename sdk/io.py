"""Small I/O helpers shared by runtime and toolchain: hashing and atomic writes.

Every file skugen writes goes through `atomic_file` here: write to a temp file in the
same directory, fsync, then os.replace(), so a crash or kill -9 never leaves a
half-written file under the final name (`atomic_dir` does the same for directories).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class AtomicFile:
    """What `atomic_file` yields: write to `.tmp`; after the block, `.path` is the published name."""

    def __init__(self, tmp: Path, path: Path) -> None:
        self.tmp, self.path = tmp, path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, exclusive: bool = False) -> Iterator[AtomicFile]:
    """The one atomic writer: the block writes `af.tmp` (same directory); on success it is fsynced, given the
    usual mode and renamed to `path`, then the directory is fsynced. On error or kill nothing appears at `path`.

    exclusive=True never replaces an existing file: the name gets a "-1", "-2", ... suffix instead
    (hard-link publish, atomic and race-free between processes); `af.path` is the name used.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    af = AtomicFile(Path(tmp), path)
    try:
        yield af
        with open(tmp, "rb+") as f:  # whatever wrote it (tarfile, safetensors, ...) may not have synced
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files get the usual mode
        if not exclusive:
            os.replace(tmp, path)
        else:
            af.path = _link_free_name(tmp, path)
            os.unlink(tmp)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _link_free_name(tmp: str, path: Path) -> Path:
    for k in range(100_000):
        target = path if k == 0 else path.with_name(f"{path.stem}-{k}{path.suffix}")
        try:
            os.link(tmp, target)  # fails if target exists: nothing is ever overwritten
        except FileExistsError:
            continue
        return target
    raise FileExistsError(f"no free name for {path} after 100000 tries")


def _fsync_dir(d: Path) -> None:
    """Make the rename itself durable (best effort: some filesystems refuse to fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, exclusive: bool = False) -> Path:
    """`data` to `path` through atomic_file; returns the path used (see exclusive there)."""
    with atomic_file(path, exclusive=exclusive) as af:
        af.tmp.write_bytes(data)
    return af.path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


_UMASK = _umask()  # read once at import: os.umask() is process-global and not thread-safe


def json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Build a directory under a temp name next to `final`, then rename it into place.

    A reader either sees the old complete directory, the new complete one, or
    nothing: never a partial one. On error the temp dir is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700
    try:
        yield tmp
        if final.exists():
            if not overwrite:
                raise FileExistsError(final)
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
