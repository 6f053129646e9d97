"""The HTTP session: a connection pool sized to the concurrency, proxy and CA settings read once."""

from __future__ import annotations

import requests
import requests.auth
from requests.adapters import HTTPAdapter


def new_session(pool_size: int, auth: requests.auth.AuthBase | None = None) -> requests.Session:
    """A session whose connection pool fits `pool_size` concurrent requests."""
    from .. import __version__

    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    size = max(pool_size, 10)
    session = requests.Session()
    # requests' default pool holds 10 connections per host; with more workers the extra
    # connections are opened and thrown away on every request. Retries are ours, not urllib3's.
    adapter = HTTPAdapter(pool_connections=size, pool_maxsize=size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = f"modelarts-cleanup/{__version__}"
    session.headers["Accept"] = "application/json"
    session.auth = auth
    return session


def settle_environment(session: requests.Session, endpoint: str) -> None:
    """Read the proxy and CA-bundle variables once, for the one host every call goes to.

    With `trust_env` on, requests scans the whole environment twice per request: a fifth of the
    client's CPU. The values it would find are the same for every call, so they are fixed here,
    exactly as requests would merge them, and the per-request scan is switched off. TLS
    verification stays on: `verify` can only become a CA bundle path, never False.
    """
    if not session.trust_env:
        return
    merged = session.merge_environment_settings(endpoint, {}, None, session.verify, None)
    session.proxies.update(merged["proxies"])
    session.verify = merged["verify"] if merged["verify"] is not None else True
    session.cert = merged["cert"]
    session.trust_env = False
