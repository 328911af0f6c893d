"""Ports for the servers the tests start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the kernel has just handed out on 127.0.0.1, free for a server to bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
