"""Configuration: the one place where environment variable names live."""

from __future__ import annotations

import difflib
import json
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

from .cloud.endpoint import endpoint_for_region, is_region, parse_endpoint
from .events.payload import MAX_SELECTORS, Target, decode_json
from .events.problems import describe_errors, type_name
from .exceptions import ConfigurationError, PayloadError
from .vocabulary import ApiGeneration, is_instance_id, is_project_id

if TYPE_CHECKING:
    from .cloud.notify import TopicUrn
    from .events.rules import Selector
    from .events.tags import TagCondition

PREFIX = "MODELARTS_CLEANUP_"
RunStatusName = Literal["succeeded", "partial", "failed", "refused"]
# The tag that keeps a notebook from every selector, unless MODELARTS_CLEANUP_PROTECT_TAGS says.
DEFAULT_PROTECT_TAG = "modelarts-cleanup:keep"

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


def _json_object(value: object) -> object:
    """A mapping setting: a JSON object (blank is empty)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"must be a JSON object, not {type_name(data)}")
    return data


def _checked_url(region: str, url: object) -> str:
    if not isinstance(url, str):
        raise ValueError(f"{region}: must be a URL string, not {type_name(url)}")
    try:
        return parse_endpoint(url).base_url
    except ValueError as exc:
        raise ValueError(f"{region}: {exc}") from None


_REGION_EXPECTED = "region IDs (lowercase letters, digits and hyphens, such as 'cn-north-4')"


class Settings(BaseSettings):
    """Every setting of the function, validated."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    region: str | None = None
    endpoint: str | None = None
    # Region ID -> ModelArts base URL, over the region's own (other domains, local use).
    endpoints: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # Project ID -> region ID, before the function's own project and IAM are asked.
    project_regions: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    iam_endpoint: str | None = None
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
    # Over the cap: refuse the whole run, or carry out the first max_deletions actions.
    over_cap: Literal["refuse", "defer"] = "refuse"
    # Run statuses that make a timer or SMN invocation end in a function error; empty: never.
    fail_on: Annotated[frozenset[RunStatusName], NoDecode] = Field(frozenset({"refused", "failed"}))
    concurrency: int = Field(8, ge=1, le=64)
    max_attempts: int = Field(5, ge=1, le=10)
    connect_timeout: float = Field(5.0, gt=0, le=60)
    read_timeout: float = Field(30.0, gt=0, le=300)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    # JSON lines (what LTS indexes), or text for people; the command line picks by the terminal.
    log_format: Literal["json", "text"] = "json"
    # Whose notebooks a selector lists: everyone's (ListAllNotebooks) or the caller's own.
    list_scope: Literal["all", "own"] = "all"
    # Tag conditions that keep a selected instance (TagCondition); None: the default one.
    protect_tags: Annotated[tuple[Any, ...] | None, NoDecode] = None
    # The SMN topic a digest of each run goes to (cloud.notify.TopicUrn's text); None: none.
    notify_topic: str | None = None
    # Which runs publish one: any that changed something or went wrong, only problems, or all.
    notify_on: Literal["changes", "problems", "always"] = "changes"
    smn_endpoint: str | None = None
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

    @field_validator("project_regions", mode="before")
    @classmethod
    def _project_regions(cls, value: object) -> object:
        value = _json_object(value)
        if not isinstance(value, dict):
            return value
        bad_keys = sorted(k for k in value if not is_project_id(k))
        if bad_keys:
            raise ValueError(
                f"keys must be project IDs (32 lowercase hex characters): {bad_keys[:5]}"
            )
        bad = sorted(k for k, v in value.items() if not is_region(v))
        if bad:
            raise ValueError(f"values must be {_REGION_EXPECTED}; not for {bad[:5]}")
        return value

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoints(cls, value: object) -> object:
        value = _json_object(value)
        if not isinstance(value, dict):
            return value
        bad_keys = sorted(str(k) for k in value if not is_region(k))
        if bad_keys:
            raise ValueError(f"keys must be {_REGION_EXPECTED}: {bad_keys[:5]}")
        return {region: _checked_url(region, url) for region, url in value.items()}

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

    @field_validator("log_format", mode="before")
    @classmethod
    def _format(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or "json"
        return value

    @field_validator("fail_on", mode="before")
    @classmethod
    def _statuses(cls, value: object) -> object:
        items = _split_list(value)
        if isinstance(items, list):
            return [i.strip().lower() if isinstance(i, str) else i for i in items]
        return items

    @field_validator("api", "list_scope", "notify_on", "over_cap", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "region",
        "endpoint",
        "iam_endpoint",
        "access_key",
        "notify_topic",
        "smn_endpoint",
        mode="before",
    )
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

    @field_validator("endpoint", "iam_endpoint", "smn_endpoint")
    @classmethod
    def _endpoint_shape(cls, value: str | None) -> str | None:
        return None if value is None else parse_endpoint(value).base_url

    @field_validator("notify_topic")
    @classmethod
    def _topic_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from .cloud.notify import parse_topic_urn  # loaded only when a topic is set

        return str(parse_topic_urn(value))

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.endpoint is None and self.region is None and not self.endpoints:
            raise ValueError(
                f"set {_ENV['region']} (e.g. cn-north-4), {_ENV['endpoints']} or {_ENV['endpoint']}"
            )
        if self.endpoint is not None and self.endpoints:
            raise ValueError(
                f"{_ENV['endpoint']} sends every request to one endpoint; "
                f"{_ENV['endpoints']} says where each region's go: set one of them"
            )
        plain = [
            name
            for name, urls in (
                ("endpoint", [self.endpoint]),
                ("endpoints", list(self.endpoints.values())),
                ("iam_endpoint", [self.iam_endpoint]),
                ("smn_endpoint", [self.smn_endpoint]),
            )
            if any(u is not None and parse_endpoint(u).plain_http for u in urls)
        ]
        if plain and not self.allow_http:
            raise ValueError(
                f"{_ENV[plain[0]]} is plain http://; credentials would travel unencrypted. "
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
    def topic(self) -> TopicUrn | None:
        """The SMN topic a run's digest goes to, or None."""
        if self.notify_topic is None:
            return None
        from .cloud.notify import parse_topic_urn

        return parse_topic_urn(self.notify_topic)

    @property
    def smn_base_url(self) -> str | None:
        """Where the digest is published: the setting, else the topic's region's SMN."""
        topic = self.topic
        if topic is None:
            return None
        from .cloud.notify import smn_endpoint_for_region

        return self.smn_endpoint or smn_endpoint_for_region(topic.region)

    @property
    def base_url(self) -> str | None:
        """The endpoint given outright, else the configured region's (None: no region set)."""
        if self.endpoint is not None:
            return self.endpoint
        return None if self.region is None else self.region_url(self.region)

    def region_url(self, region: str) -> str:
        """A region's ModelArts endpoint: the one given for it, else the region's public one."""
        return self.endpoints.get(region) or endpoint_for_region(region)

    @property
    def iam_url(self) -> str:
        """IAM's endpoint."""
        from .cloud.iam import IAM_ENDPOINT

        return self.iam_endpoint or IAM_ENDPOINT


def variable(name: str) -> str:
    """The environment variable of a setting (a field name of Settings)."""
    return _ENV[name]


def text_logs(environ: Mapping[str, str]) -> bool:
    """Whether MODELARTS_CLEANUP_LOG_FORMAT asks for text logs; read before the other settings,
    so that even a line saying they are invalid comes in the format asked for."""
    return environ.get(_ENV["log_format"], "").strip().lower() == "text"


# Field name -> environment variable, derived from the model: a field `foo` is read from
# MODELARTS_CLEANUP_FOO, except the credentials, which keep the names Huawei's SDKs use.
_OWN_NAMES = {
    "access_key": "HUAWEICLOUD_SDK_AK",
    "secret_key": "HUAWEICLOUD_SDK_SK",
    "security_token": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
}
_ENV: dict[str, str] = {
    name: _OWN_NAMES.get(name, PREFIX + name.upper()) for name in Settings.model_fields
}
ENV_NAMES: frozenset[str] = frozenset(_ENV.values())
SECRET_ENV_NAMES: frozenset[str] = frozenset(
    _ENV[name] for name in ("secret_key", "security_token", "auth_token")
)


def unknown_settings(environ: Mapping[str, str]) -> list[str]:
    """A problem for each MODELARTS_CLEANUP_ variable that is no setting: a typo would otherwise
    be ignored (DRYRUN for DRY_RUN, and the run deletes). Names only, never a value."""
    # Compared without the prefix, which every name shares and would make anything look close.
    known = sorted(n.removeprefix(PREFIX) for n in ENV_NAMES if n.startswith(PREFIX))
    problems = []
    for name in sorted(n for n in environ if n.startswith(PREFIX) and n not in ENV_NAMES):
        near = difflib.get_close_matches(name.removeprefix(PREFIX), known, n=1, cutoff=0.6)
        hint = f"; did you mean {PREFIX}{near[0]}?" if near else ""
        problems.append(f"{name}: not a setting{hint}")
    return problems


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Settings from an environment-like mapping; a bad value names its variable, never a secret.

    Every problem is listed, default selectors' too, each located (`VARIABLE[i].key`).
    """
    values: dict[str, Any] = {name: environ[var] for name, var in _ENV.items() if var in environ}
    unknown = unknown_settings(environ)
    selectors, problems = _default_selectors(values.pop("selectors", ""))
    try:
        settings = Settings(**values, selectors=selectors)
    except ValidationError as exc:
        problems = describe_errors(exc, roots=_ENV) + problems
    except ConfigurationError as exc:  # a malformed region, from endpoint_for_region
        problems = [f"{_ENV['region']}: {exc}", *problems]
    problems = unknown + problems
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise ConfigurationError(f"invalid configuration:\n{listed}") from None
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
