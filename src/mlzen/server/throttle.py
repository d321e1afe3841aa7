"""Login throttling: few password guesses per user name and per client address.

Each login (the dashboard's form and ``POST /api/v1/auth/login``) is counted against two
keys before the password is checked: the user name as typed, and the address it came
from. A user name takes :data:`USER_ATTEMPTS` logins in a window of :data:`WINDOW`, an
address :data:`ADDRESS_ATTEMPTS`; past either, the answer is 429 with ``Retry-After``
until the window ends, and the password is not even checked, so the right one does not
get in either. A successful login forgets its user's count and gives its address one
back.

The counts live in the metadata store (``login_attempts``), so every server process over
one store, and a restarted one, throttles the same guesses. Only SHA-256 hashes of the
names and addresses are stored. Behind a proxy the address is the one uvicorn reports
(the proxy's own, unless it is trusted to forward the client's).
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta
from typing import TYPE_CHECKING

from mlzen.errors import TooManyAttemptsError
from mlzen.server.auth import User, authenticate_password
from mlzen.store import users as user_rows

if TYPE_CHECKING:
    from mlzen.store.metadata import MetadataStore

USER_ATTEMPTS = 10
ADDRESS_ATTEMPTS = 50
WINDOW = timedelta(minutes=5)


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()


def login(store: MetadataStore, name: str, password: str, address: str) -> User | None:
    """The user ``name`` if ``password`` is theirs, else ``None``; throttled.

    Args:
        address: The client's address, as the server sees it.

    Raises:
        TooManyAttemptsError: This user name or this address has used up its logins for
            now; ``retry_after`` is the seconds until it may try again.
    """
    user_key, address_key = _key("user", name), _key("address", address)
    wait = user_rows.take_login_attempt(
        store, {user_key: USER_ATTEMPTS, address_key: ADDRESS_ATTEMPTS}, WINDOW
    )
    if wait is not None:
        seconds = max(1, math.ceil(wait.total_seconds()))
        raise TooManyAttemptsError(
            f"Too many logins for this user or from this address: at most {USER_ATTEMPTS} "
            f"per user and {ADDRESS_ATTEMPTS} per address in {WINDOW.seconds // 60} "
            f"minutes. Try again in {seconds} seconds, or use an API key.",
            retry_after=seconds,
        )
    user = authenticate_password(store, name, password)
    if user is not None:
        user_rows.give_back_login_attempt(store, forget=user_key, release=address_key)
    return user
