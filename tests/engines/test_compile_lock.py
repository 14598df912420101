"""Two processes that need the same kernel at once compile it once: the second waits on the
kernel's file lock and then loads the first one's machine code from the cache
(``mixedglm.compile_cache``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

HOLDER = """
import fcntl, os, sys
from numba.core import types
from mixedglm import compile_cache
from mixedglm.families.dispatch import no_fisher_weight
sig = (types.float64, types.float64)
path = compile_cache.lock_path(no_fisher_weight.py_func, sig)
path.parent.mkdir(parents=True, exist_ok=True)
handle = os.open(path, os.O_CREAT | os.O_RDWR)
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
compile_cache._NUMBA_COMPILE(no_fisher_weight, sig)  # compiles and writes the cache
print("compiled", sum(no_fisher_weight.stats.cache_misses.values()), flush=True)
os.close(handle)
"""

WAITER = """
from mixedglm.families.dispatch import no_fisher_weight
no_fisher_weight(1.0, 0.5)
stats = no_fisher_weight.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()), flush=True)
"""


@pytest.mark.skipif(os.name != "posix", reason="file locks (fcntl) are POSIX only")
def test_a_second_process_waits_and_loads_the_first_ones_kernel(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}  # an empty cache
    run = {"env": env, "stdout": subprocess.PIPE, "text": True}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, **run)
    try:
        assert holder.stdout.readline().strip() == "locked"
        waiter = subprocess.Popen([sys.executable, "-c", WAITER], **run)
        time.sleep(4.0)  # the waiter imports the package and reaches the lock meanwhile
        assert waiter.poll() is None, "the second process compiled without waiting"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["compiled", "1"]
        out, _ = waiter.communicate(timeout=120)
        assert out.split() == ["1", "0"]  # one cache hit, no compilation of its own
    finally:
        holder.kill()


PROBE = """
from mixedglm import compile_cache
from mixedglm.families.dispatch import no_fisher_weight
print(compile_cache.ready(no_fisher_weight, (1.0, 0.5)), len(no_fisher_weight.overloads))
no_fisher_weight(1.0, 0.5)
stats = no_fisher_weight.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()), flush=True)
"""


def test_ready_loads_a_cached_kernel_and_never_compiles(tmp_path):
    """``compile_cache.ready``: False on an empty cache without compiling anything; in the
    next process True, the kernel loaded from the cache (no compilation at the call)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    run = {"env": env, "capture_output": True, "text": True, "check": True, "timeout": 300}
    first = subprocess.run([sys.executable, "-c", PROBE], **run).stdout.split()
    assert first == ["False", "0", "0", "1"]  # not ready, nothing compiled; the call compiles
    second = subprocess.run([sys.executable, "-c", PROBE], **run).stdout.split()
    assert second == ["True", "1", "0", "0"]  # loaded by ready: no hit or miss at the call


def test_no_background_compilation_without_an_interpreter(monkeypatch):
    """Where no process can be started (an embedded interpreter without
    ``sys.executable``) the background compilation is skipped, not an error."""
    from mixedglm import compile_cache
    from mixedglm.families.dispatch import no_fisher_weight

    monkeypatch.setattr(compile_cache.sys, "executable", "")
    monkeypatch.setattr(compile_cache, "_launched", {})
    assert compile_cache.compile_in_background(no_fisher_weight, (1.0, 0.5)) is None
    assert compile_cache.compile_in_background(no_fisher_weight, (1.0, 0.5)) is None  # once
    assert len(compile_cache._launched) == 1


def test_no_background_compilation_for_what_cannot_be_pickled(monkeypatch):
    """Objects the compilation needs that cannot be pickled (say, a family defined in a
    closure): no background compilation, not an error."""
    from mixedglm import compile_cache
    from mixedglm.families.dispatch import no_fisher_weight

    monkeypatch.setattr(compile_cache, "_launched", {})
    unpicklable = (lambda: 0,)
    assert compile_cache.compile_in_background(no_fisher_weight, (1.0, 0.5), unpicklable) is None
