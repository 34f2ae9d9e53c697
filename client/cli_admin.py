"""``hashmatch settings``: the server's effective settings (AdminService, admin key), read-only.

Settings are the server's start-up flags; there is no command that changes them.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from hashmatch.client import output
from hashmatch.client.models import ServerSettings


def add_settings_command(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    command(commands, "settings", cmd_settings,
            "show the server's effective settings (admin key; read-only: they are its start-up flags)")


def cmd_settings(args: argparse.Namespace, client: Any, console: Any) -> int:
    found = client.get_settings()
    console.emit(found, lambda: settings_table(found))
    return 0


def _on(value: bool) -> str:
    return "on" if value else "off"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _size(value: float) -> str:
    mib = 1024 * 1024
    return f"{value / mib:g} MiB" if value >= mib else f"{value:.0f} bytes"


def _limit(value: float, text: str) -> str:
    return text if value > 0 else "no limit"


def settings_table(s: ServerSettings) -> str:
    limits = s.limits
    tls = _on(s.tls)
    if s.client_certificate_required:
        tls += f" (client certificates required; {s.client_certificate_roles} identities mapped to roles)"
    selftest = _on(s.selftest)
    if s.selftest:
        selftest += (f", then every {_seconds(s.selftest_interval_seconds)}" if s.selftest_interval_seconds
                     else ", at start-up only")
    rows = [
        ("version", s.version),
        ("store", s.store),
        ("auth", _on(s.auth)),
        ("tls", tls),
        ("reflection", _on(s.reflection)),
        ("workers", s.workers),
        ("hashing slots", f"{s.hashing_slots} (per process)"),
        ("threads", s.threads),
        ("max message bytes", f"{s.max_message_bytes} ({_size(s.max_message_bytes)})"),
        ("max pixels", s.max_pixels),
        ("fast mode", _on(s.fast)),
        ("match regions", _on(s.match_regions)),
        ("match log (log hashes)", _on(s.log_hashes)),
        ("self-test", selftest),
        ("grace on SIGTERM", _seconds(s.grace_seconds)),
        ("store poll interval", _seconds(s.follow_interval_seconds)),
        ("max staleness", "none" if s.max_staleness_seconds is None else _seconds(s.max_staleness_seconds)),
        ("metrics endpoint", _on(s.metrics)),
        ("health-only port", _on(s.health_port)),
        ("match rate per key", _limit(limits.match_requests_per_second,
                                      f"{limits.match_requests_per_second:g}/s, burst {limits.match_request_burst:g}")),
        ("match bytes per key", _limit(limits.match_bytes_per_second,
                                       f"{_size(limits.match_bytes_per_second)}/s, burst {_size(limits.match_bytes_burst)}")),
        ("max concurrent per key", _limit(limits.max_concurrent_per_key, str(limits.max_concurrent_per_key))),
        ("max concurrent RPCs", limits.max_concurrent_rpcs),
        ("max upload entries", limits.max_upload_entries),
        ("max lists", limits.max_lists),
        ("max query hashes", limits.max_query_hashes),
        ("default thresholds", output.per_algorithm(s.default_thresholds)),
    ]
    return output.table(("SETTING", "VALUE"), rows)
