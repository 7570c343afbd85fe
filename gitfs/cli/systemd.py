"""systemd's readiness protocol (sd_notify): one datagram to $NOTIFY_SOCKET, no library needed."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("gitfs")


def notify(message: str) -> bool:
    """Sends e.g. "READY=1" when systemd (or anything that set $NOTIFY_SOCKET) listens.

    False when nobody asked; a socket that cannot be reached is logged, never fatal: the
    mount itself is fine either way.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET=%s: only unix sockets are supported", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(message.encode(), address)
    except OSError as e:
        log.warning("cannot notify %s: %s", os.environ["NOTIFY_SOCKET"], e.strerror)
        return False
    return True

