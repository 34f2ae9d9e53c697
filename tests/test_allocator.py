"""server/allocator.py: with glibc's thresholds fixed, a freed large block leaves the process.

Without it, glibc's dynamic mmap threshold rises to the size of the first large block freed, and
the next blocks of that size come from the heap, where freeing one leaves it resident when a
smaller block sits above it: the pattern of an index build's temporaries.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

PROBE = textwrap.dedent("""
    import os, sys
    import numpy as np
    if sys.argv[1] == "fixed":
        from hashmatch.server.allocator import return_large_blocks_to_the_system
        assert return_large_blocks_to_the_system()
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    base = rss()
    keep = []
    for _ in range(8):
        block = np.ones(20 << 20, np.uint8)  # 20 MiB, every page touched
        keep.append(np.ones(1000, np.uint8))  # a small block allocated after it
        del block
    print((rss() - base) >> 20)
""")


def retained_mib(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_freed_large_blocks_stay_resident_under_the_default_thresholds() -> None:
    # The control: shows the probe detects the retention the setting removes.
    assert retained_mib("default") >= 20


def test_with_the_thresholds_fixed_freed_large_blocks_are_returned() -> None:
    assert retained_mib("fixed") < 4
