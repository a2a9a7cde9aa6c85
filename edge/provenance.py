"""Provenance and safe writes, shared by every stage.

    >>> from edge.provenance import atomic_write_json, sha256_file
    >>> atomic_write_json("/tmp/x.json", {"a": 1}); len(sha256_file("/tmp/x.json"))
    64
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds.

    An interrupted or failed write leaves nothing at `path` (and no temp file behind). `suffix`
    is for writers that insist on an extension (Keras wants ".keras").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make artifacts private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_out_dir(path: str | os.PathLike, flag: str = "--out") -> None:
    """Before any work: UserError unless `path` is a folder, or can be made one, that we can write."""
    from edge.errors import UserError

    p = Path(path)
    try:
        exists = p.exists()
        parent = next((q for q in (p, *p.parents) if q.exists()), Path("."))
    except OSError as e:  # a name longer than the file system takes, ...
        raise UserError(f"{flag} {path}: not a usable folder name ({e.strerror or e})") from None
    if exists and not p.is_dir():
        raise UserError(f"{flag} {path}: a file is there, expected a folder (or a new folder's name)")
    if not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is a file, so no folder can be made there")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {parent} is not writable")
    if not exists:  # access() says yes to root where no folder can be made (/proc, a read-only
        #             mount): the first missing folder is made and removed again
        new = next(q for q in (*reversed(p.parents), p) if not q.exists())
        try:
            new.mkdir()
        except FileExistsError:  # another process made it meanwhile: it can be made
            return
        except OSError as e:
            raise UserError(f"{flag} {path}: cannot make a folder there ({e.strerror or e})") from None
        try:
            new.rmdir()
        except OSError:  # another process writes in it already: leave it
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_record(path: str | os.PathLike | None) -> dict | None:
    """A file as a report names it: its name and SHA-256 (None for no file)."""
    return {"file": Path(path).name, "sha256": sha256_file(path)} if path else None


def report_beside(path: str | os.PathLike, report_name: str) -> tuple[dict | None, str | None]:
    """The JSON report named `report_name` beside the file `path`, if it is that file's: (report,
    None); (None, why not) for one that is unreadable, not a JSON object, or names another hash for
    the file (train.json's "model", locator.json's "files"); (None, None) for none. A report that
    names no hash (written before reports named them) is taken as the file's."""
    where = Path(path).with_name(report_name)
    if not where.is_file():
        return None, None
    try:
        report = json.loads(where.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{where}: not a readable report ({e.__class__.__name__})"
    model, files = (report.get("model"), report.get("files")) if isinstance(report, dict) else ([], [])
    if not (isinstance(model, dict | None) and isinstance(files, dict | None)):  # a list is no report
        return None, f"{where}: not a report this code writes"
    named = (model or {}).get("sha256") or ((files or {}).get(Path(path).name) or {}).get("sha256")
    if named and named != sha256_file(path):
        return None, f"{where} describes another file than {Path(path).name} (another SHA-256)"
    return report, None


def init_record(init: str | os.PathLike | None, report_name: str, drop: tuple[str, ...] = ()) -> dict | None:
    """What a fine-tune started from: the file's record and the report named `report_name` beside it
    (the run that made it, minus `drop`'s keys), so the whole recipe is on record; a report that is
    not that file's (`report_beside`) is None, with a warning: it vouches for nothing."""
    if not init:
        return None
    made_by, why = report_beside(init, report_name)
    if why:
        log.warning("%s; the start is recorded without it", why)
    return {**file_record(init), "report": made_by and {k: v for k, v in made_by.items() if k not in drop}}


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of the named distributions (None when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, with '-dirty' if it has local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def environment(*packages: str) -> dict:
    """Who made an artifact: code version, Python, platform and the named packages' versions."""
    from edge import __version__

    return {
        "mnist_edge": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "packages": package_versions("numpy", *packages),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
