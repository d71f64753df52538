"""A port for a server a test configures before it starts it (the web app's base_url, the daemon's
`[web] port`).

A port from bind(("127.0.0.1", 0)), closed and handed on, is in the kernel's ephemeral range, and
the servers the test starts next (bound to port 0) and its outgoing connections draw from that
range too: one of them can be given the port before the web app binds it ("address already in
use", seen once in CI). A port below the range is never handed out that way; it is checked free
here, and drawn at random so that two tests rarely try the same one.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere the check below still keeps the port free


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, outside the ephemeral range when it can be."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randint(20000, low - 1) if low > 21000 else random.randint(1024, 65535)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # every draw taken: the kernel's choice, as before
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
