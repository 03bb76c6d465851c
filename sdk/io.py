"""Small I/O helpers shared by runtime and toolchain: hashing, atomic writes, the JSON cleaner.

Every file skugen writes goes through `atomic_file` here: write to a temp file in the
same directory, fsync, then os.replace(), so a crash or kill -9 never leaves a
half-written file under the final name (`atomic_dir` does the same for directories, its files
fsynced before the rename). Append-only logs are read back with `read_jsonl`, which drops a last
line torn by a crash mid-append.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections import deque
from pathlib import Path, PurePath
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
    return atomic_write_text(path, json_text(obj))


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


_UMASK = _umask()  # read once at import: os.umask() is process-global and not thread-safe


def _plain(o: Any) -> Any:
    """One non-JSON value as JSON-able data, or TypeError. numpy is never imported here: its scalars
    and arrays are recognised by `.tolist()` (a scalar's gives a Python number)."""
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, PurePath):
        return str(o)
    if hasattr(o, "tolist"):  # numpy scalar or array
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_default(o: Any) -> Any:
    """`json.dumps(..., default=json_default)`: numpy, Paths, dataclasses, objects with to_dict()."""
    return _plain(o)


def jsonable(o: Any, finite: bool = True) -> Any:
    """The one JSON cleaner: plain dict/list/str/int/float/bool/None from numpy scalars and arrays, Paths,
    dataclasses, objects with to_dict(), tuples and deques (lists); dict keys become strings; anything
    else becomes str(o).

    NaN/inf policy: finite=True (reports read by other tools: strict JSON) writes them as None;
    finite=False keeps them (json.dumps then writes NaN/Infinity, as bundle reports always have,
    e.g. the PSNR of identical images is Infinity).
    """
    if isinstance(o, dict):
        return {str(k): jsonable(v, finite) for k, v in o.items()}
    if isinstance(o, (list, tuple, deque)):
        return [jsonable(v, finite) for v in o]
    if o is None or isinstance(o, (bool, str, int)):
        return o
    if isinstance(o, float):
        o = float(o)  # np.float64 is a float subclass
        return o if not finite or math.isfinite(o) else None
    try:
        p = _plain(o)
    except TypeError:
        return str(o)
    return jsonable(p, finite)


def json_text(obj: Any, indent: int | None = 2) -> str:
    """The one JSON layout of files skugen writes: indented, key order kept, a final newline."""
    return json.dumps(obj, indent=indent, sort_keys=False, default=json_default) + "\n"


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
        _fsync_tree(tmp)  # what the block wrote (write_bytes, copyfile, tools) is on disk before it is published
        if final.exists():
            if not overwrite:
                raise FileExistsError(final)
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    """fsync every regular file below `root`, then every directory (deepest first), so a power loss after the
    rename cannot leave a published directory with empty or torn files."""
    dirs = []
    for d, _, files in os.walk(root):
        dirs.append(d)
        for name in files:
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
    for d in reversed(dirs):
        _fsync_dir(Path(d))


def read_jsonl(path: str | os.PathLike) -> list:
    """The records of an append-only JSON-lines log. A last line without its newline that does not parse was
    torn by a crash mid-append and is dropped; a bad line anywhere else raises DataError."""
    from .errors import DataError

    text = Path(path).read_text()
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:  # no newline after it: the append never finished
                break
            raise DataError(f"{path}: line {i + 1} is not JSON ({e.msg}); the log is damaged. Remove that line "
                            f"(or the file, to lose the curve) and run again.") from e
    return out
