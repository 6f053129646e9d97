"""Configuration: the one place where environment variable names live."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from .cloud.endpoint import endpoint_for_region, parse_endpoint
from .events.payload import MAX_SELECTORS, Target, decode_json, describe_errors, type_name
from .exceptions import ConfigurationError, PayloadError
from .functiongraph import FunctionContext
from .vocabulary import ApiGeneration, is_instance_id, is_project_id

if TYPE_CHECKING:
    from .events.rules import Selector
    from .events.tags import TagCondition

PREFIX = "MODELARTS_CLEANUP_"
# The tag that keeps a notebook from every selector, unless MODELARTS_CLEANUP_PROTECT_TAGS says.
DEFAULT_PROTECT_TAG = "modelarts-cleanup:keep"

# Field name -> environment variable. Everything else in the package uses field names.
_ENV = {
    "region": PREFIX + "REGION",
    "endpoint": PREFIX + "ENDPOINT",
    "allow_http": PREFIX + "ALLOW_HTTP",
    "api": PREFIX + "API",
    "dry_run": PREFIX + "DRY_RUN",
    "targets": PREFIX + "TARGETS",
    "selectors": PREFIX + "SELECTORS",
    "allowed_projects": PREFIX + "ALLOWED_PROJECTS",
    "protected_instances": PREFIX + "PROTECTED_INSTANCES",
    "max_deletions": PREFIX + "MAX_DELETIONS",
    "concurrency": PREFIX + "CONCURRENCY",
    "max_attempts": PREFIX + "MAX_ATTEMPTS",
    "connect_timeout": PREFIX + "CONNECT_TIMEOUT",
    "read_timeout": PREFIX + "READ_TIMEOUT",
    "log_level": PREFIX + "LOG_LEVEL",
    "list_scope": PREFIX + "LIST_SCOPE",
    "protect_tags": PREFIX + "PROTECT_TAGS",
    "confirm_seconds": PREFIX + "CONFIRM_SECONDS",
    "access_key": "HUAWEICLOUD_SDK_AK",
    "secret_key": "HUAWEICLOUD_SDK_SK",
    "security_token": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "auth_token": PREFIX + "AUTH_TOKEN",
}
ENV_NAMES: frozenset[str] = frozenset(_ENV.values())
SECRET_ENV_NAMES: frozenset[str] = frozenset(
    _ENV[name] for name in ("secret_key", "security_token", "auth_token")
)


_ID_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "allowed_projects": (is_project_id, "project IDs (32 lowercase hex characters)"),
    "protected_instances": (is_instance_id, "instance IDs (UUID, optionally prefixed 'DE-')"),
}


def _split_list(value: object) -> object:
    """Lists come as JSON or comma-separated text."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg})") from None
    return [part.strip() for part in text.split(",") if part.strip()]


class Settings(BaseSettings):
    """Every setting of the function, validated."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    region: str | None = None
    endpoint: str | None = None
    allow_http: bool = False
    api: ApiGeneration = Field(ApiGeneration.NOTEBOOK)
    dry_run: bool = False
    targets: Annotated[tuple[Target, ...], NoDecode] = Field(())
    # Rules a timer run with an empty user event applies (rules.Selector), checked by
    # load_settings; typed loosely so that a function without them never loads `rules`.
    selectors: tuple[Any, ...] = ()
    allowed_projects: Annotated[frozenset[str], NoDecode] = Field(frozenset())
    protected_instances: Annotated[frozenset[str], NoDecode] = Field(frozenset())
    max_deletions: int = Field(50, ge=0)
    concurrency: int = Field(8, ge=1, le=64)
    max_attempts: int = Field(5, ge=1, le=10)
    connect_timeout: float = Field(5.0, gt=0, le=60)
    read_timeout: float = Field(30.0, gt=0, le=300)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    # Whose notebooks a selector lists: everyone's (ListAllNotebooks) or the caller's own.
    list_scope: Literal["all", "own"] = "all"
    # Tag conditions that keep a selected instance (TagCondition); None: the default one.
    protect_tags: Annotated[tuple[Any, ...] | None, NoDecode] = None
    # How long, at most, deleted instances are read again until each is gone; 0: not at all.
    confirm_seconds: float = Field(60.0, ge=0, le=900)
    access_key: str | None = None
    secret_key: SecretStr | None = None
    security_token: SecretStr | None = None
    auth_token: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values come only from the mapping load_settings() is given, so a test (or a warm
        # container) never picks up a stray variable it did not mean to pass.
        return (init_settings,)

    @field_validator("targets", "allowed_projects", "protected_instances", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("protect_tags", mode="before")
    @classmethod
    def _conditions(cls, value: object) -> object:
        # Blank is unset (the default guard); only an explicit empty list switches it off.
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        from .events.tags import parse_conditions  # loaded only when the setting is given

        items = _split_list(value)
        if not isinstance(items, list):
            raise ValueError("a JSON list or comma-separated tag conditions")
        return parse_conditions(items)

    @field_validator("list_scope", mode="before")
    @classmethod
    def _lower_scope(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("api", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("region", "endpoint", "access_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("secret_key", "security_token", "auth_token", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("allowed_projects", "protected_instances")
    @classmethod
    def _ids(cls, value: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        is_valid, expected = _ID_RULES[info.field_name or ""]
        bad = sorted(v for v in value if not is_valid(v))
        if bad:
            raise ValueError(f"not {expected}: {bad[:5]}")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_shape(cls, value: str | None) -> str | None:
        return None if value is None else parse_endpoint(value).base_url

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.endpoint is None and self.region is None:
            raise ValueError(f"set {_ENV['region']} (e.g. cn-north-4) or {_ENV['endpoint']}")
        insecure = self.endpoint is not None and parse_endpoint(self.endpoint).plain_http
        if insecure and not self.allow_http:
            raise ValueError(
                f"{_ENV['endpoint']} is plain http://; credentials would travel unencrypted. "
                f"Use https://, or set {_ENV['allow_http']}=true for local testing only"
            )
        if self.region is not None and self.endpoint is None:
            endpoint_for_region(self.region)  # raises ConfigurationError on a malformed region
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError(f"set both {_ENV['access_key']} and {_ENV['secret_key']}, or neither")
        if self.security_token is not None and self.access_key is None:
            raise ValueError(f"{_ENV['security_token']} needs {_ENV['access_key']} and its SK")
        return self

    @property
    def protect(self) -> tuple[TagCondition, ...]:
        """The tag conditions that keep a selected instance: the setting, else the default."""
        from .events.tags import TagCondition

        if self.protect_tags is None:
            return (TagCondition(DEFAULT_PROTECT_TAG),)
        return tuple(self.protect_tags)

    @property
    def base_url(self) -> str:
        """The ModelArts endpoint requests go to."""
        if self.endpoint is not None:
            return self.endpoint
        assert self.region is not None  # noqa: S101  (guaranteed by _consistent)
        return endpoint_for_region(self.region)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Settings from an environment-like mapping; a bad value names its variable, never a secret.

    Every problem is listed, default selectors' too, each located (`VARIABLE[i].key`).
    """
    values: dict[str, Any] = {name: environ[var] for name, var in _ENV.items() if var in environ}
    selectors, problems = _default_selectors(values.pop("selectors", ""))
    try:
        settings = Settings(**values, selectors=selectors)
    except ValidationError as exc:
        problems = describe_errors(exc, roots=_ENV) + problems
    except ConfigurationError as exc:  # a malformed region, from endpoint_for_region
        problems = [f"{_ENV['region']}: {exc}", *problems]
    if problems:
        raise ConfigurationError("invalid configuration:\n" + "\n".join(problems)) from None
    return settings


def _default_selectors(raw: str) -> tuple[tuple[Selector, ...], list[str]]:
    """MODELARTS_CLEANUP_SELECTORS: a JSON list of selectors, checked as a payload's are."""
    name = _ENV["selectors"]
    if not raw.strip():
        return (), []
    try:
        items = decode_json(raw, where=name)
    except PayloadError as exc:
        return (), list(exc.problems)
    if not isinstance(items, list):
        return (), [f"{name}: must be a JSON list of selectors, not {type_name(items)}"]
    if not items:
        return (), []
    if len(items) > MAX_SELECTORS:
        return (), [f"{name}: at most {MAX_SELECTORS} selectors, not {len(items)}"]
    problems = [
        f"{name}[{i}]: must be an object, not {type_name(item)}"
        for i, item in enumerate(items)
        if not isinstance(item, dict)
    ]
    from .events.rules import parse_selectors  # loaded only when the setting holds rules

    selectors, wrong = parse_selectors(items, where=name)
    problems.extend(wrong)
    return (() if problems else tuple(selectors)), problems


def function_environment(
    context: object | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables the function sees: the environment, then FunctionGraph's user data."""
    merged = dict(os.environ if environ is None else environ)
    user_data = _runtime_user_data(merged.get("RUNTIME_USERDATA"))
    function = FunctionContext(context)
    for name in ENV_NAMES:
        if name in merged:
            continue
        if name in user_data:
            merged[name] = user_data[name]
        elif (value := function.user_data(name)) is not None:
            merged[name] = value
    return merged


def _runtime_user_data(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigurationError("RUNTIME_USERDATA: not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigurationError("RUNTIME_USERDATA: must be a JSON object")
    return {str(k): str(v) for k, v in data.items() if isinstance(v, (str, int, float, bool))}
