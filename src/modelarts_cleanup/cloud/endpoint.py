"""Where requests go: a region's public ModelArts endpoint, or one given outright. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError

_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Endpoint:
    """A checked base URL."""

    base_url: str  # scheme://host[:port][/prefix], no trailing slash
    host: str  # host[:port], for messages

    @property
    def plain_http(self) -> bool:
        """Whether requests would travel unencrypted."""
        return self.base_url.startswith("http://")


def is_region(value: object) -> bool:
    """Whether a value is shaped like a region ID (`cn-north-4`)."""
    return isinstance(value, str) and _REGION.fullmatch(value) is not None


def endpoint_for_region(region: str) -> str:
    """The public ModelArts endpoint of a Huawei Cloud region."""
    # Unknown but well-formed regions pass: new regions appear before any list is updated.
    # SDKv3 uses `.myhuaweicloud.cn` for ap-southeast-1 where docs and Terraform use `.com`;
    # we keep the one uniform pattern and anyone needing the other sets the endpoint outright.
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ConfigurationError(
            f"invalid region {region!r}: expected lowercase letters, digits and hyphens "
            "such as 'cn-north-4'"
        )
    return f"https://modelarts.{region}.myhuaweicloud.com"


def parse_endpoint(url: str) -> Endpoint:
    """Check a base URL; ValueError says what is wrong without echoing credentials."""
    if not isinstance(url, str):
        raise ValueError("must be an absolute http(s) URL such as https://modelarts.example.com")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL such as https://modelarts.example.com")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ValueError("must not hold credentials, a query or a fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 0 to 65535") from None
    host = parts.hostname if port is None else f"{parts.hostname}:{port}"
    # urlsplit lower-cases the scheme; the URL sent must say exactly what was checked.
    return Endpoint(f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/"), host)
