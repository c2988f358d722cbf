"""Ports: is one free, find a free one, refuse a taken one with the setting that moves it."""

from __future__ import annotations

import socket

from core.errors import PortInUseError


def port_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port (so we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (for test fixtures)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def require_free(host: str, port: int, setting: str) -> None:
    if not port_free(host, port):
        raise PortInUseError(
            f"port {port} on {host} is already taken by another process; "
            f"stop it or set {setting} to a free port"
        )
