"""The cold-start floor: the least a process built on our two runtime dependencies must do.

Import `requests` and `pydantic_settings`, read one settings class from the environment, sign one
DELETE with SDK-HMAC-SHA256 (inline, standard library) and send it with `requests`; nothing else.
Any function on these dependencies pays at least this, so our cold start is measured against it.

    python benchmarks/floor.py PROJECT_ID INSTANCE_ID    # settings from FLOOR_* variables
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class FloorSettings(BaseSettings):
    """Where to send the request, and the key pair to sign it with."""

    model_config = SettingsConfigDict(env_prefix="FLOOR_")

    endpoint: str
    access_key: str
    secret_key: SecretStr


def delete(settings: FloorSettings, project_id: str, instance_id: str) -> int:
    """Sign and send one DELETE; returns the HTTP status."""
    path = f"/v1/{project_id}/notebooks/{instance_id}"
    host = urlsplit(settings.endpoint).netloc
    date = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {"host": host, "x-project-id": project_id, "x-sdk-date": date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        (
            "DELETE",
            path + "/",
            "",
            "".join(f"{name}:{headers[name]}\n" for name in sorted(headers)),
            signed,
            hashlib.sha256(b"").hexdigest(),
        )
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    key = settings.secret_key.get_secret_value().encode()
    sig = hmac.new(key, f"SDK-HMAC-SHA256\n{date}\n{digest}".encode(), "sha256").hexdigest()
    headers["Authorization"] = (
        f"SDK-HMAC-SHA256 Access={settings.access_key}, SignedHeaders={signed}, Signature={sig}"
    )
    response = requests.delete(settings.endpoint + path, headers=headers, timeout=10)
    return response.status_code


if __name__ == "__main__":
    status = delete(FloorSettings(), sys.argv[1], sys.argv[2])
    sys.exit(0 if status == 200 else 3)
