"""Which addresses a server may bind without credentials: loopback only.

`newsml serve` (bearer token) and `newsml label` (per-labeller tokens) both refuse to listen on
anything but a loopback address unless credentials are configured: anyone who can reach the port
would otherwise classify on our hardware or, worse, write the trusted labels the gate trusts.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`; names and wildcard addresses (0.0.0.0, ::) are not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_open_bind(host: str, *, has_credentials: bool, what: str, how: str) -> None:
    """Raise PermissionError when `host` is not loopback and no credentials are set.

    `what`: the server ("the labelling page"); `how`: the fix, naming the setting."""
    if not has_credentials and not is_loopback(host):
        raise PermissionError(
            f"refusing to serve {what} on {host} without credentials: {how}, or bind 127.0.0.1"
        )
