"""Where credentials come from: settings first, then the FunctionGraph context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import requests
from pydantic import SecretStr

from ..exceptions import CredentialsError
from ..functiongraph import FunctionContext
from .signer import SdkHmacSha256Auth, header_safe


@dataclass(frozen=True)
class AkSk:
    """An access key pair, with a security token when it is temporary."""

    access_key: str
    secret_key: SecretStr
    security_token: SecretStr | None
    source: str

    def auth(self) -> requests.auth.AuthBase:
        """Signs every request with SDK-HMAC-SHA256."""
        return SdkHmacSha256Auth(self.access_key, self.secret_key, self.security_token)

    def secret_values(self) -> tuple[str, ...]:
        """What must never be shown: the SK and the security token."""
        token = () if self.security_token is None else (self.security_token.get_secret_value(),)
        return (self.secret_key.get_secret_value(), *token)


@dataclass(frozen=True)
class IamToken:
    """A project-scoped IAM token."""

    token: SecretStr
    source: str

    def auth(self) -> requests.auth.AuthBase:
        """Sends the token as X-Auth-Token."""
        return TokenAuth(self.token)

    def secret_values(self) -> tuple[str, ...]:
        """What must never be shown: the token."""
        return (self.token.get_secret_value(),)


Credentials = AkSk | IamToken


class TokenAuth(requests.auth.AuthBase):
    """Adds `X-Auth-Token` to each request."""

    def __init__(self, token: SecretStr) -> None:
        if not header_safe(token.get_secret_value()):
            raise CredentialsError(
                "the IAM token is empty or has characters an HTTP header cannot carry"
            )
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["X-Auth-Token"] = self._token.get_secret_value()
        return r

    def __repr__(self) -> str:
        return "TokenAuth(token='**********')"


class ConfiguredCredentials(Protocol):
    """The credentials the settings may hold (the settings model has these fields)."""

    @property
    def access_key(self) -> str | None: ...
    @property
    def secret_key(self) -> SecretStr | None: ...
    @property
    def security_token(self) -> SecretStr | None: ...
    @property
    def auth_token(self) -> SecretStr | None: ...


def resolve_credentials(settings: ConfiguredCredentials, context: object | None) -> Credentials:
    """Configured credentials (AK/SK, then a token), else the agency's keys, else the context's."""
    if settings.access_key is not None and settings.secret_key is not None:
        return AkSk(settings.access_key, settings.secret_key, settings.security_token, "settings")
    if settings.auth_token is not None:
        return IamToken(settings.auth_token, "settings")
    function = FunctionContext(context)
    access_key, secret_key, security_token = function.agency_keys()
    if access_key and secret_key:
        temporary = SecretStr(security_token) if security_token else None
        return AkSk(access_key, SecretStr(secret_key), temporary, "agency")
    context_token = function.token()
    if context_token:
        return IamToken(SecretStr(context_token), "context")
    raise CredentialsError(
        "no credentials: give the function an agency allowed to delete ModelArts notebooks "
        "(FunctionGraph), or set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK "
        "(+ HUAWEICLOUD_SDK_SECURITY_TOKEN for temporary keys), or MODELARTS_CLEANUP_AUTH_TOKEN"
    )
