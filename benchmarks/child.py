"""`python -m balanceit.benchmarks.child SPEC`: run one benchmark stage in this fresh interpreter.

The parent (`balanceit bench ...`) starts one child per measured stage, so a stage's peak memory is
its own: nothing the parent or an earlier stage allocated is counted. Inside a stage, `measured`
wraps the timed section; it resets the kernel's resident high-water mark when the section starts
(inputs already loaded stay counted, transient loading peaks do not) and reads it when it ends.

Peak memory is read from /proc/self/status (VmHWM), not from `ru_maxrss`: on Linux a child started
by fork + exec inherits the parent's high-water mark in `ru_maxrss`, VmHWM belongs to the new image.
`ru_maxrss` is the fallback where /proc is absent.
"""

from __future__ import annotations

import cProfile
import gc
import importlib
import io
import json
import os
import pstats
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROFILE_ENV = "BALANCEIT_BENCH_PROFILE"  # a folder: each measured section writes <name>.prof and <name>.txt
KB = 1024

_sections: dict[str, dict[str, float]] = {}
_process_peak_kb = [0]


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_kb() -> int:
    hwm = _status_kb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


@dataclass
class Section:
    name: str
    seconds: float = 0.0


def _release_free_memory() -> None:
    """Hand memory freed while loading inputs back to the system (Arrow's pool keeps it otherwise)."""
    gc.collect()
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()


@contextmanager
def measured(name: str) -> Iterator[Section]:
    """Time a section and record its peak resident memory (profiled when PROFILE_ENV is set).

    Before the section starts, memory freed while loading the inputs is returned to the system, so
    the peak counts the inputs the section holds, not the loader's leftovers.
    """
    section = Section(name)
    _process_peak_kb[0] = max(_process_peak_kb[0], _peak_kb())
    _release_free_memory()
    rss_before = _status_kb("VmRSS") or 0
    was_reset = _reset_peak()
    profile_dir = os.environ.get(PROFILE_ENV)
    profiler = cProfile.Profile() if profile_dir else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    try:
        yield section
    finally:
        if profiler:
            profiler.disable()
        section.seconds = time.perf_counter() - started
        peak = _peak_kb()
        _process_peak_kb[0] = max(_process_peak_kb[0], peak)
        _sections[name] = {
            "seconds": section.seconds,
            "peak_mb": peak / KB,
            "rss_before_mb": rss_before / KB,
            "peak_is_section_only": was_reset,
        }
        if profiler:
            _write_profile(profiler, Path(profile_dir), name)


def _write_profile(profiler: cProfile.Profile, folder: Path, name: str, lines: int = 30) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(folder / f"{name}.prof")
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)
    (folder / f"{name}.txt").write_text(text.getvalue())


def main(spec_text: str) -> None:
    spec = json.loads(spec_text)
    module_name, function_name = spec["function"].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(**spec["kwargs"])
    _process_peak_kb[0] = max(_process_peak_kb[0], _peak_kb())
    payload = {
        "result": result,
        "sections": _sections,
        "process_peak_mb": _process_peak_kb[0] / KB,
    }
    Path(spec["out"]).write_text(json.dumps(payload, default=str))


if __name__ == "__main__":
    # Run as `-m`, this file is `__main__`; the stages import it as `balanceit.benchmarks.child`,
    # whose module state (the measured sections) is the one to report.
    from balanceit.benchmarks import child

    child.main(sys.argv[1])
