"""Output folders: roadsynth writes only into folders it owns, and only one run at a time.

A folder is roadsynth's when it is empty (or new) or holds the marker `.roadsynth.json` that every run
writes first (what kind of output, from which config digest). Anything else is a user's folder: a run
refuses it and names what is in it, unless told `--overwrite`, and even then never deletes a file it
did not write. Re-running over a previous output of the same config resumes it; a different config is
refused, or with `--overwrite` the old outputs roadsynth wrote there are removed first, so no stale
image or chunk of the old run survives into the new one.

The marker says whose outputs a folder holds, not whether a run is writing them now: two overlapping
scheduled runs would both pass it, and an `--overwrite` one would delete the other's files mid-run. So
`claim` also takes the folder's lock, `.roadsynth.lock`: a JSON record of the holder (pid, host, kind,
command, start time) on which the holder keeps an `fcntl.flock` for the rest of its process. A second run
finds the flock taken and refuses at once, naming the holder. The OS drops a flock when its process dies,
however it dies, so a lock file whose flock is free is a crashed run's and is taken over (with a warning);
a clean exit deletes it. Within one process the lock is re-entrant: a flow that claims the folder its
command already claimed, or a resume in the same process, goes on.

How far the lock reaches is how far flock does. On a local disk that is every process of this machine.
On NFS, Linux sends flock to the server as a whole-file lock (NFSv4, or v3 with lockd), which other hosts
see; a mount with `nolock` or `local_lock=flock|all` keeps locks on each host, so two hosts could write one
folder at once: there, give each host its own `--out`. Where there is no flock (Windows, or a file system
that refuses it) the record alone decides: a holder on this host whose pid is gone is stale, any other is
taken to be running, and the message says which file to delete if it is not.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from roadsynth import __version__
from roadsynth.datasets.io import TEMP_PREFIX, FileOpError, atomic_write_json, read_json

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)

MARKER = ".roadsynth.json"
LOCK = ".roadsynth.lock"  # and `.roadsynth.lock.<random>`, a record on its way in (never a user's file)
# What each kind of run writes at the top of its folder (removed on --overwrite with another config).
OWNED = {
    "generate": ("images", "chunks", "quarantine", "annotations.json", "manifest.json", "config.yaml",
                 "curated.json", "placements.json", "restyle_config.yaml"),
    "experiment": ("splits", "arms", "runs", "plots", "generated", "generated_random", "real_cutouts",
                   "config.yaml", "generated_config.yaml", "generated_random_config.yaml", "metrics.json",
                   "runs.csv", "report.md", "report.html", "sources", "timings.json"),
    "import": ("images", "annotations.json"),
    "place": ("placements.json",),
    "export": ("images", "labels", "annotations.json", "data.yaml"),
    "starter": ("weights.pt", "classes.json", "manifest.json", "config.yaml", "training_curve.csv", "images", "run"),
    "cutouts": ("index.json", "manifest.json"),  # and one numbered PNG per cut-out, named in index.json
}


class OutputFolderError(ValueError):
    """An output folder roadsynth must not write into (the message says why and what to do)."""


def read_marker(folder: Path) -> dict | None:
    # A marker is a few dozen bytes; anything big, odd (a FIFO) or broken makes the folder a user's.
    try:
        marker = read_json(Path(folder) / MARKER, "output marker", max_bytes=1 << 20)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def claim(folder: str | Path, kind: str, digest: str | None = None, *, overwrite: bool = False) -> Path:
    """Make `folder` this run's output folder, or refuse. Returns it (created when missing).

    Takes the folder's lock for the rest of the process (re-entrant; `release` gives it back sooner)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    _refuse_users_folder(folder, kind, overwrite)  # first without the lock: a user's folder gets no lock file
    taken = lock_folder(folder, kind)
    try:
        # Again under the lock: a run that ended since the first look may have left its outputs here.
        marker = _refuse_users_folder(folder, kind, overwrite)
        if marker is not None and (marker.get("kind") != kind or (digest and marker.get("digest") != digest)):
            what = (f"a `{marker.get('kind')}` output" if marker.get("kind") != kind
                    else f"the {kind} output of another config (digest {marker.get('digest')}, this one {digest})")
            if not overwrite:
                raise OutputFolderError(f"{folder}: holds {what}; a run resumes only the same config. Choose another "
                                        "folder, or pass --overwrite to replace the outputs roadsynth wrote there")
            remove_owned(folder, marker.get("kind", kind))
        atomic_write_json(folder / MARKER, {"kind": kind, "digest": digest, "roadsynth_version": __version__},
                          indent=1)
    except BaseException:
        if taken:
            release(folder)
        raise
    return folder


def _refuse_users_folder(folder: Path, kind: str, overwrite: bool) -> dict | None:
    """Raise unless `folder` is empty, roadsynth's, or a user's that `--overwrite` may write into; its marker."""
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith(LOCK))
    marker = read_marker(folder)
    if entries and marker is None:
        if not overwrite:
            shown = ", ".join(entries[:6]) + (f" and {len(entries) - 6} more" if len(entries) > 6 else "")
            raise OutputFolderError(
                f"{folder}: not empty and not a roadsynth output (it holds {shown}); choose an empty folder, or pass "
                "--overwrite to write into it anyway (roadsynth deletes nothing it did not write)")
        # Writing "anyway" must not replace the user's own files under the names this run writes.
        clash = [n for n in OWNED.get(kind, ()) if (folder / n).exists() or (folder / n).is_symlink()]
        if clash:
            raise OutputFolderError(
                f"{folder}: not a roadsynth output, and it already holds {', '.join(clash)}, which this {kind} run "
                "would replace; --overwrite never replaces a user's files: move them or choose another folder")
    return marker


def remove_owned(folder: Path, kind: str) -> list[str]:
    """Delete what a `kind` run writes (and roadsynth's temp files) from `folder`; nothing else."""
    removed = []
    for name in OWNED.get(kind, ()):
        p = folder / name
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
        else:
            continue
        removed.append(name)
    for p in folder.glob(f"{TEMP_PREFIX}*.tmp"):
        p.unlink(missing_ok=True)
    return removed


# The folder lock ---------------------------------------------------------------------------------------------
#
# The record at `.roadsynth.lock` is always whole: it is written to `.roadsynth.lock.<random>` first and
# put in place by `os.link` (only when there is none) or `os.replace`. That name is changed (replaced,
# deleted) only by the process holding the flock of the file it names, which checks that it still names
# that file: so two runs that both find a stale record cannot both take it over, and a run that opened a
# record just as its holder deleted it retries instead of locking a file nobody looks at any more.


@dataclass
class _Held:
    path: Path
    record: dict
    fd: int | None  # the open lock file carrying the flock; None where there is no flock


_held: dict[str, _Held] = {}  # this process's locks, by resolved folder
_held_guard = threading.RLock()


def lock_folder(folder: str | Path, kind: str) -> bool:
    """Take `folder`'s lock for this process, or raise OutputFolderError naming the run that holds it.
    True when taken now, False when this process held it already."""
    folder = Path(folder)
    key = str(folder.resolve())
    with _held_guard:
        held = _held.get(key)
        if held is not None and _still_ours(held):
            return False
        if held is not None:  # the folder was deleted and made anew under this process: its lock went with it
            _forget(key)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "kind": kind,
                  "command": shlex.join(sys.argv), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "roadsynth_version": __version__}
        _held[key] = _install(folder, record)
        return True


def release(folder: str | Path) -> None:
    """Give `folder`'s lock back (process exit does it anyway). Only the process that took it deletes it."""
    with _held_guard:
        _forget(str(Path(folder).resolve()))


def _forget(key: str) -> None:
    held = _held.pop(key, None)
    # A child forked from the holder inherits this table (and the flock), but the lock is still its parent's.
    if held is None or held.record["pid"] != os.getpid():
        return
    try:
        if _still_ours(held):
            held.path.unlink()
    except OSError:
        pass  # the folder is gone already
    finally:
        if held.fd is not None:
            os.close(held.fd)


@atexit.register
def _release_all() -> None:
    with _held_guard:
        for key in list(_held):
            _forget(key)


def _install(folder: Path, record: dict) -> _Held:
    path = folder / LOCK
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{LOCK}.", dir=folder)
    except OSError as e:
        raise FileOpError("write", path, e) from None
    try:
        os.write(fd, json.dumps(record, indent=1).encode() + b"\n")
        os.chmod(tmp, 0o644)  # other users' runs must be able to read who holds the folder
        flock = _try_flock(fd)  # a file no other process knows of: ours, where the file system has flock
        if flock is None:
            os.close(fd)  # Windows renames no file that is open
            fd = None
        for _ in range(10):  # each retry means a holder let go in the meantime
            try:
                os.link(tmp, path)
                return _Held(path, record, fd)
            except FileExistsError:
                pass
            except OSError:  # no hard links here (FAT, SMB, some FUSE mounts)
                if (held := _create_in_place(path, record, flock)) is not None:
                    if fd is not None:
                        os.close(fd)
                    return held
            if (_take_over if flock else _take_over_by_pid)(folder, path, tmp):
                return _Held(path, record, fd)
        raise OutputFolderError(f"`{folder}`: its lock file {LOCK} keeps changing (other roadsynth runs are starting "
                                "there); wait for them to finish or use another --out")
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def _create_in_place(path: Path, record: dict, flock: bool | None) -> _Held | None:
    """The record written where it lies, flocked first; None when there is one already. A run starting in
    the same microseconds could find it empty and unlocked, a race the link above does not have."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    except FileExistsError:
        return None
    try:
        if flock:
            _try_flock(fd)
        os.write(fd, json.dumps(record, indent=1).encode() + b"\n")
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    if flock:
        return _Held(path, record, fd)
    os.close(fd)
    return _Held(path, record, None)


def _take_over(folder: Path, path: Path, tmp: str) -> bool:
    """Put our record at `path` if its holder's flock is free; False when the file changed meanwhile."""
    try:
        fd = os.open(path, os.O_RDWR)  # NFS grants an exclusive flock only to a file open for writing
    except FileNotFoundError:
        return False
    try:
        holder = _read_record(fd)
        if _try_flock(fd) is False:
            raise OutputFolderError(_in_use(folder, holder))
        if not _same_file(fd, path):
            return False
        os.replace(tmp, path)
    finally:
        os.close(fd)  # the stale file's flock: only needed until our record replaced it
    gone = holder.get("host") == socket.gethostname() and not _alive(holder.get("pid"))
    log.warning("`%s`: taking over the lock of a roadsynth run that is gone (%s; %s)", folder, _describe(holder),
                f"pid {holder.get('pid')} is not running" if gone else "its flock is free")
    return True


def _take_over_by_pid(folder: Path, path: Path, tmp: str) -> bool:
    # No flock: a record of this host names a pid that can be checked; another host's cannot.
    try:
        holder = _read_record(path)
    except FileNotFoundError:
        return False
    if holder.get("host") != socket.gethostname() or _alive(holder.get("pid")):
        raise OutputFolderError(f"{_in_use(folder, holder)} (if it is not running, delete {path})")
    os.replace(tmp, path)
    log.warning("`%s`: taking over the lock of a roadsynth run that is gone (%s; pid %s is not running)", folder,
                _describe(holder), holder.get("pid"))
    return True


def _try_flock(fd: int) -> bool | None:
    """Take the flock of `fd` without waiting: True, False (another process holds it), None (no flock here)."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: a file system without locks
        return None
    return True


def _still_ours(held: _Held) -> bool:
    try:
        if held.fd is not None:
            return _same_file(held.fd, held.path)
        return _read_record(held.path) == held.record
    except (OSError, ValueError):
        return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read_record(file: int | Path) -> dict:
    """A lock record, from an open file or a path; {} when it is not one (the message then shows '?')."""
    if isinstance(file, int):
        os.lseek(file, 0, os.SEEK_SET)
        data = os.read(file, 1 << 16)
    else:
        with open(file, "rb") as f:
            data = f.read(1 << 16)
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):  # 64 KiB of '[' nests past Python's limit
        return {}
    return record if isinstance(record, dict) else {}


def _in_use(folder: Path, holder: dict) -> str:
    return (f"`{folder}` is in use by another roadsynth run ({_describe(holder)}); wait for it to finish or use "
            "another --out")


def _describe(holder: dict) -> str:
    return (f"{holder.get('kind', '?')}, pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')}")


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":
        # os.kill(pid, 0) on Windows would send CTRL_C_EVENT: ask for the process instead.
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists, another user's
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return not ok or code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, another user's
        return True
    return True
