"""Where numba keeps mixedglm's compiled kernels, keyed on the package's sources.

numba's own cache checks only the source file of the function it compiled: a kernel that
inlines a family's derivatives from another file would keep running stale machine code after
that file changed. Here every kernel of the package is cached in a folder named after a hash
of all the package's ``.py`` files, so any change to any source gives new folders and a fresh
compilation: stale code cannot run, by construction.

The folder is ``__pycache__/numba-<hash>`` beside the package when writable (an editable or
user install), otherwise ``$XDG_CACHE_HOME/mixedglm`` (or ``~/.cache/mixedglm``), or inside
``NUMBA_CACHE_DIR`` when that is set. Only functions defined in the package's own files are
affected; other numba users in the same process keep numba's default behaviour.

Processes that need the same kernel at once (the worker processes of a local Dask cluster,
pytest-xdist's workers) compile it once: a kernel's compilation holds a file lock
(``locks/`` in the folder, one per kernel and signature), so the second process waits and
then loads the first one's machine code from the cache instead of compiling it again.

:func:`install` must run before any kernel module is imported; ``mixedglm/__init__.py`` does
it first thing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from numba.core import caching
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import Dispatcher

try:
    import fcntl
except ImportError:  # not on POSIX: no lock, each process compiles for itself
    fcntl = None  # type: ignore[assignment]

PACKAGE_DIR = Path(__file__).resolve().parent


def source_key(root: Path = PACKAGE_DIR) -> str:
    """A hash of every ``.py`` file below ``root`` (paths and contents), 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return False
    return True


def cache_root(key: str) -> Path:
    """The folder of this source version's compiled kernels (created if needed)."""
    user_dir = os.environ.get("NUMBA_CACHE_DIR")
    candidates = [Path(user_dir) / "mixedglm" / f"numba-{key}"] if user_dir else []
    candidates.append(PACKAGE_DIR / "__pycache__" / f"numba-{key}")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    candidates.append(Path(xdg) / "mixedglm" / f"numba-{key}")
    for folder in candidates:
        if _writable(folder):
            return folder
    return candidates[-1]


class _PackageLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """numba cache locator for functions in this package's files (see module doc)."""

    root: Path | None = None

    def __init__(self, py_func, py_file: str) -> None:
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        relative = Path(py_file).resolve().parent.relative_to(PACKAGE_DIR)
        assert self.root is not None
        self._cache_path = str(self.root / relative)

    def get_cache_path(self) -> str:
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file: str):
        if cls.root is None or not py_file:
            return None
        try:
            Path(py_file).resolve().relative_to(PACKAGE_DIR)
        except ValueError:
            return None
        locator = cls(py_func, py_file)
        try:
            locator.ensure_cache_path()
        except OSError:
            return None
        return locator


def _remove_stale(root: Path) -> None:
    """Delete the compiled kernels of earlier source versions beside ``root``."""
    for folder in root.parent.glob("numba-*"):
        if folder != root and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def lock_path(py_func: Any, signature: object) -> Path | None:
    """The lock file of one kernel and signature (``None`` for functions outside the
    package, or without a cache folder)."""
    root = _PackageLocator.root
    if root is None or not getattr(py_func, "__module__", "").startswith("mixedglm."):
        return None
    name = f"{py_func.__module__}.{py_func.__qualname__}:{signature}"
    return root / "locks" / f"{hashlib.sha256(name.encode()).hexdigest()[:20]}.lock"


_NUMBA_COMPILE = Dispatcher.compile


def _compile_once(self: Dispatcher, sig: Any) -> Any:
    """``Dispatcher.compile`` under the kernel's file lock (see the module doc). numba's own
    (in-process) compiler lock is taken first, so threads of one process never wait on each
    other's file locks."""
    path = lock_path(self.py_func, sig) if fcntl is not None else None
    if path is None:
        return _NUMBA_COMPILE(self, sig)
    with global_compiler_lock:
        try:
            path.parent.mkdir(exist_ok=True)
            handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        except OSError:  # a read-only cache folder: compile without the lock
            return _NUMBA_COMPILE(self, sig)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            return _NUMBA_COMPILE(self, sig)
        finally:
            os.close(handle)  # releases the lock


def ready(dispatcher: Dispatcher, args: tuple) -> bool:
    """Whether ``dispatcher`` can run on ``args`` without compiling: compiled for their
    types in this process, or in the cache (then loaded, as numba's ``compile`` would)."""
    sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    if sig in dispatcher.overloads:
        return True
    with global_compiler_lock:
        cache: Any = dispatcher._cache  # type: ignore[attr-defined]  # (not in numba's stubs)
        cres = cache.load_overload(sig, dispatcher.targetctx)
        if cres is None:
            return False
        dispatcher.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        dispatcher.add_overload(cres)
    return True


_BACKGROUND = """
import importlib, os, pickle, sys
if hasattr(os, "nice"):
    os.nice(10)
import mixedglm
module, name, sig, _keep = pickle.loads(sys.stdin.buffer.read())
kernel = importlib.import_module(module)
for part in name.split("."):
    kernel = getattr(kernel, part)
kernel.compile(sig)
"""


_launched: dict[bytes, subprocess.Popen | None] = {}  # the background compilations started


def compile_in_background(
    dispatcher: Dispatcher, args: tuple, keep: tuple = ()
) -> subprocess.Popen | None:
    """Compile ``dispatcher`` for the types of ``args`` into the cache in a separate process
    at low priority (once per kernel and signature in a process), which finishes even when
    this one has ended; later evaluations find the kernel with :func:`ready`. ``keep``:
    objects the compilation needs in that process (unpickled there first: a family token
    registers its family). Nothing partial is left if it is stopped: numba writes each
    cache file under a temporary name and renames it. ``None`` where no process can be
    started (an embedded interpreter without ``sys.executable``) or ``keep`` cannot be
    pickled: then the fits go on without it."""
    sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    key = (dispatcher.py_func.__module__, dispatcher.py_func.__qualname__, sig)
    name = pickle.dumps(key)
    if name in _launched:
        return _launched[name]
    child = None
    try:
        payload = pickle.dumps((*key, keep))
        child = subprocess.Popen(
            [sys.executable, "-c", _BACKGROUND], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        assert child.stdin is not None
        child.stdin.write(payload)
        child.stdin.close()
    except (pickle.PicklingError, TypeError, AttributeError):  # a family that cannot travel
        child = None
    except (OSError, ValueError):  # no interpreter to start, or it ended at once
        child = None
    _launched[name] = child
    return child


def install() -> Path:
    """Put the package's kernels in the source-keyed folder (idempotent)."""
    if _PackageLocator.root is None:
        root = cache_root(source_key())
        if root.name.startswith("numba-"):
            _remove_stale(root)
        _PackageLocator.root = root
    # _CacheImpl was renamed CacheImpl in numba 0.61
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # type: ignore[attr-defined]
    classes = impl._locator_classes
    if _PackageLocator not in classes:
        classes.insert(0, _PackageLocator)
    Dispatcher.compile = _compile_once  # type: ignore[method-assign]
    return _PackageLocator.root


install()  # on import: the package's __init__ imports this module before any kernel
