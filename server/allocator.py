"""The C allocator's settings for a server process: large index arrays go back to the system.

glibc's malloc serves a request of at least ``M_MMAP_THRESHOLD`` bytes with its own mapping,
which ``free`` unmaps at once. By default that threshold is dynamic: each time a mapped block is
freed, the threshold rises to its size (up to 32 MiB), so the next blocks of that size come from
the heap and the per-thread arenas instead, where a freed block stays resident unless it happens
to lie at the top. Building a 10M-entry index frees tens of such temporaries (substring keys,
bucket counts, sort buffers, 16-80 MB each), on the loader's thread and on the table builders':
measured with bench/search.py's memory command, 10M pHash entries kept ~8 bytes per entry (80 MB)
of freed memory resident, on top of the 28.4 the index holds; with the threshold fixed it is 0.4.

A fixed threshold of 16 MiB keeps what the dynamic one gives the hashing path (a 1080p image's
temporaries, 2-8 MB, are reused from the heap rather than mapped and faulted in per upload)
while every index-sized array is mapped and returned when freed. Only the process's entry point
calls this: a library must not change its host's allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 16 << 20
# Free memory at the heap's top above this is given back (glibc's default is twice the dynamic
# mmap threshold, up to 64 MiB, once that has risen).
TRIM_THRESHOLD = 32 << 20

log = logging.getLogger("hashmatch.server")


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's mmap and trim thresholds (see the module docstring). False where the C
    library is not glibc (musl, macOS), whose allocators behave differently and are left alone."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # mallopt returns 1 on success, 0 on error.
        done = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        done = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    except (OSError, AttributeError) as error:  # no loadable libc: keep the defaults
        log.warning("could not set the allocator's thresholds: %s", error)
        return False
    return done
