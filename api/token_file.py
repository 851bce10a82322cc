"""The first-run bearer token: on a fresh machine `lookups stack up` and docker compose start the
REST api with a token generated into a file, rather than refusing until LOOKUPS_API_TOKENS is set."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from lookups import InvalidInputError


def token_from_file(path: Path) -> tuple[str, bool]:
    """The token kept in ``path``, generated and written owner-only when the file does not exist
    yet; True when it was just generated (the one time it is printed)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if not token:
            raise InvalidInputError(f"--token-file {path} is empty: delete it to generate a new token") from None
        return token, False
    token = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token, True


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def announce(path: Path, token: str, generated: bool) -> str:
    """What to print: the token itself the one time it is generated, later only where it is."""
    if generated:
        return (f"api token  {token} (generated once, kept in {path}; "
                f"clients: export LOOKUPS_API_TOKEN=$(cat {path}))")
    return f"api token  in {path} (clients: export LOOKUPS_API_TOKEN=$(cat {path}))"
