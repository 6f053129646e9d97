"""Settings: every variable, its defaults, and errors that name the variable but never a secret."""

from __future__ import annotations

import json

import pytest

from modelarts_cleanup.environment import function_environment
from modelarts_cleanup.events.payload import MAX_SELECTORS, Target
from modelarts_cleanup.events.rules import Selector
from modelarts_cleanup.events.tags import TagCondition
from modelarts_cleanup.exceptions import ConfigurationError
from modelarts_cleanup.settings import (
    ENV_NAMES,
    SECRET_ENV_NAMES,
    Settings,
    load_settings,
)
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.support import FunctionGraphContext

P1 = "ed43aef64dff4e5c81cb84b71adcb3fd"
I1 = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
SECRET = "sk-VERY-SECRET-VALUE-42"


def settings(**env: str) -> Settings:
    return load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", **env})


def config_error(**env: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    return str(caught.value)


def test_defaults_match_the_design() -> None:
    s = settings()
    assert s.base_url == "https://modelarts.cn-north-4.myhuaweicloud.com"
    assert s.api is ApiGeneration.NOTEBOOK
    assert (s.dry_run, s.allow_http) == (False, False)
    assert s.targets == () and s.selectors == ()
    assert s.allowed_projects == frozenset()
    assert s.protected_instances == frozenset()
    assert (s.max_deletions, s.concurrency, s.max_attempts) == (50, 8, 5)
    assert (s.connect_timeout, s.read_timeout) == (5.0, 30.0)
    assert s.log_level == "INFO"
    assert s.access_key is s.secret_key is s.security_token is s.auth_token is None
    assert s.list_scope == "all"
    assert s.protect == (TagCondition("modelarts-cleanup:keep"),)
    assert (s.topic, s.notify_on, s.smn_base_url) == (None, "changes", None)
    assert s.project_regions == {} and s.endpoints == {}
    assert s.iam_url == "https://iam.myhuaweicloud.com"
    assert (s.confirm_seconds, s.log_format) == (60.0, "json")
    assert s.over_cap == "refuse"
    assert s.fail_on == {"refused", "failed"}


DESIGNED = """
MODELARTS_CLEANUP_REGION MODELARTS_CLEANUP_ENDPOINT MODELARTS_CLEANUP_ALLOW_HTTP
MODELARTS_CLEANUP_API MODELARTS_CLEANUP_DRY_RUN MODELARTS_CLEANUP_TARGETS
MODELARTS_CLEANUP_SELECTORS MODELARTS_CLEANUP_ALLOWED_PROJECTS
MODELARTS_CLEANUP_PROTECTED_INSTANCES MODELARTS_CLEANUP_MAX_DELETIONS MODELARTS_CLEANUP_CONCURRENCY
MODELARTS_CLEANUP_MAX_ATTEMPTS MODELARTS_CLEANUP_CONNECT_TIMEOUT MODELARTS_CLEANUP_READ_TIMEOUT
MODELARTS_CLEANUP_LOG_LEVEL MODELARTS_CLEANUP_LOG_FORMAT MODELARTS_CLEANUP_AUTH_TOKEN
MODELARTS_CLEANUP_LIST_SCOPE MODELARTS_CLEANUP_PROTECT_TAGS
MODELARTS_CLEANUP_NOTIFY_TOPIC MODELARTS_CLEANUP_NOTIFY_ON MODELARTS_CLEANUP_SMN_ENDPOINT
MODELARTS_CLEANUP_PROJECT_REGIONS MODELARTS_CLEANUP_ENDPOINTS MODELARTS_CLEANUP_IAM_ENDPOINT
MODELARTS_CLEANUP_OVER_CAP MODELARTS_CLEANUP_FAIL_ON
MODELARTS_CLEANUP_CONFIRM_SECONDS
HUAWEICLOUD_SDK_AK HUAWEICLOUD_SDK_SK HUAWEICLOUD_SDK_SECURITY_TOKEN
"""


def test_env_names_are_exactly_the_designed_ones() -> None:
    assert set(DESIGNED.split()) == ENV_NAMES
    secrets = {
        "HUAWEICLOUD_SDK_SK",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN",
        "MODELARTS_CLEANUP_AUTH_TOKEN",
    }
    assert secrets == SECRET_ENV_NAMES


def test_every_variable_is_read() -> None:
    s = load_settings(
        {
            "MODELARTS_CLEANUP_ENDPOINT": "https://modelarts.example.com/",
            "MODELARTS_CLEANUP_ALLOW_HTTP": "1",
            "MODELARTS_CLEANUP_API": "DevEnviron",
            "MODELARTS_CLEANUP_DRY_RUN": "true",
            "MODELARTS_CLEANUP_TARGETS": json.dumps([{"project_id": P1, "instance_id": I1}]),
            "MODELARTS_CLEANUP_SELECTORS": json.dumps(
                [{"project_id": P1, "statuses": ["STOPPED"], "idle_hours": 24}]
            ),
            "MODELARTS_CLEANUP_ALLOWED_PROJECTS": P1,
            "MODELARTS_CLEANUP_PROTECTED_INSTANCES": f'["{I1}"]',
            "MODELARTS_CLEANUP_MAX_DELETIONS": "3",
            "MODELARTS_CLEANUP_CONCURRENCY": "16",
            "MODELARTS_CLEANUP_MAX_ATTEMPTS": "2",
            "MODELARTS_CLEANUP_CONNECT_TIMEOUT": "1.5",
            "MODELARTS_CLEANUP_READ_TIMEOUT": "10",
            "MODELARTS_CLEANUP_LOG_LEVEL": "debug",
            "HUAWEICLOUD_SDK_AK": "AK",
            "HUAWEICLOUD_SDK_SK": SECRET,
            "HUAWEICLOUD_SDK_SECURITY_TOKEN": "tok",
            "MODELARTS_CLEANUP_AUTH_TOKEN": "iam",
            "MODELARTS_CLEANUP_LIST_SCOPE": "OWN",
            "MODELARTS_CLEANUP_PROTECT_TAGS": "keep,owner=platform",
            "MODELARTS_CLEANUP_OVER_CAP": " Defer ",
            "MODELARTS_CLEANUP_FAIL_ON": "FAILED, partial",
        }
    )
    assert s.base_url == "https://modelarts.example.com"
    assert s.allow_http and s.dry_run
    assert s.api is ApiGeneration.DEVENVIRON
    assert s.targets == (Target(project_id=P1, instance_id=I1),)
    assert s.selectors == (Selector(project_id=P1, statuses=("STOPPED",), idle_hours=24),)
    assert s.allowed_projects == {P1}
    assert s.protected_instances == {I1}
    assert (s.max_deletions, s.concurrency, s.max_attempts) == (3, 16, 2)
    assert (s.connect_timeout, s.read_timeout, s.log_level) == (1.5, 10.0, "DEBUG")
    assert s.access_key == "AK"
    assert s.secret_key is not None and s.secret_key.get_secret_value() == SECRET
    assert s.security_token is not None and s.auth_token is not None
    assert s.list_scope == "own"
    assert s.protect == (TagCondition("keep"), TagCondition("owner", "platform"))
    assert s.over_cap == "defer"
    assert s.fail_on == {"failed", "partial"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Given, the setting replaces the default; blank is unset (the default guard stays).
        ('["keep", {"key": "a=b", "value": "x"}]', (("keep", None), ("a=b", "x"))),
        ("team=ml , keep", (("team", "ml"), ("keep", None))),
        ("", (("modelarts-cleanup:keep", None),)),
        ("  ", (("modelarts-cleanup:keep", None),)),
        # Only an explicit empty list switches the guard off.
        ("[]", ()),
    ],
)
def test_protect_tags_replace_the_default_and_only_an_empty_list_switches_them_off(
    raw: str, expected: tuple[tuple[str, str | None], ...]
) -> None:
    protect = settings(MODELARTS_CLEANUP_PROTECT_TAGS=raw).protect
    assert tuple((c.key, c.value) for c in protect) == expected


def test_lists_accept_comma_separated_text() -> None:
    other = "0123456789abcdef0123456789abcdef"
    s = settings(MODELARTS_CLEANUP_ALLOWED_PROJECTS=f" {P1} , {other},")
    assert s.allowed_projects == {P1, other}


def test_missing_region_and_endpoint_is_explained() -> None:
    message = config_error()
    assert "MODELARTS_CLEANUP_REGION" in message and "MODELARTS_CLEANUP_ENDPOINT" in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MODELARTS_CLEANUP_CONCURRENCY": "0"}, "MODELARTS_CLEANUP_CONCURRENCY: "),
        ({"MODELARTS_CLEANUP_CONCURRENCY": "many"}, "MODELARTS_CLEANUP_CONCURRENCY: "),
        ({"MODELARTS_CLEANUP_MAX_DELETIONS": "-1"}, "MODELARTS_CLEANUP_MAX_DELETIONS: "),
        ({"MODELARTS_CLEANUP_MAX_ATTEMPTS": "11"}, "MODELARTS_CLEANUP_MAX_ATTEMPTS: "),
        ({"MODELARTS_CLEANUP_READ_TIMEOUT": "0"}, "MODELARTS_CLEANUP_READ_TIMEOUT: "),
        ({"MODELARTS_CLEANUP_API": "v2"}, "MODELARTS_CLEANUP_API: "),
        ({"MODELARTS_CLEANUP_DRY_RUN": "maybe"}, "MODELARTS_CLEANUP_DRY_RUN: "),
        ({"MODELARTS_CLEANUP_LOG_LEVEL": "LOUD"}, "MODELARTS_CLEANUP_LOG_LEVEL: "),
        ({"MODELARTS_CLEANUP_LIST_SCOPE": "mine"}, "MODELARTS_CLEANUP_LIST_SCOPE: "),
        ({"MODELARTS_CLEANUP_PROTECT_TAGS": "_sys_x"}, "MODELARTS_CLEANUP_PROTECT_TAGS: [0]: "),
        ({"MODELARTS_CLEANUP_PROTECT_TAGS": "ok, bad\tkey"}, "MODELARTS_CLEANUP_PROTECT_TAGS: [1]"),
        ({"MODELARTS_CLEANUP_PROTECT_TAGS": "[{}]"}, "MODELARTS_CLEANUP_PROTECT_TAGS: [0]: "),
        ({"MODELARTS_CLEANUP_PROTECT_TAGS": '{"a": 1}'}, "MODELARTS_CLEANUP_PROTECT_TAGS: "),
        ({"MODELARTS_CLEANUP_TARGETS": "[{"}, "MODELARTS_CLEANUP_TARGETS: "),
        ({"MODELARTS_CLEANUP_TARGETS": '[{"project_id": "x"}]'}, "MODELARTS_CLEANUP_TARGETS"),
        ({"MODELARTS_CLEANUP_ALLOWED_PROJECTS": "prod"}, "MODELARTS_CLEANUP_ALLOWED_PROJECTS: "),
        ({"MODELARTS_CLEANUP_PROTECTED_INSTANCES": "x"}, "MODELARTS_CLEANUP_PROTECTED_INSTANCES: "),
        ({"MODELARTS_CLEANUP_REGION": "CN North 4!"}, "MODELARTS_CLEANUP_REGION"),
        ({"MODELARTS_CLEANUP_ENDPOINT": "modelarts.example.com"}, "MODELARTS_CLEANUP_ENDPOINT: "),
        (
            {"MODELARTS_CLEANUP_ENDPOINT": "https://u:p@modelarts.example.com"},
            "MODELARTS_CLEANUP_ENDPOINT: ",
        ),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], expected: str) -> None:
    message = config_error(**{"MODELARTS_CLEANUP_REGION": "cn-north-4", **env})
    assert expected in message


def test_plain_http_endpoint_is_refused_unless_allowed() -> None:
    message = config_error(MODELARTS_CLEANUP_ENDPOINT="http://127.0.0.1:8080")
    assert "MODELARTS_CLEANUP_ALLOW_HTTP" in message
    s = load_settings(
        {
            "MODELARTS_CLEANUP_ENDPOINT": "http://127.0.0.1:8080",
            "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
        }
    )
    assert s.base_url == "http://127.0.0.1:8080"


def test_half_a_key_pair_is_refused() -> None:
    assert "HUAWEICLOUD_SDK_SK" in config_error(
        MODELARTS_CLEANUP_REGION="cn-north-4", HUAWEICLOUD_SDK_AK="AK"
    )
    message = config_error(MODELARTS_CLEANUP_REGION="cn-north-4", HUAWEICLOUD_SDK_SK=SECRET)
    assert "HUAWEICLOUD_SDK_AK" in message
    assert SECRET not in message


def test_errors_never_echo_secrets() -> None:
    env = {
        "MODELARTS_CLEANUP_REGION": "cn-north-4",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECRET,
        "MODELARTS_CLEANUP_AUTH_TOKEN": SECRET + "-iam",
        "MODELARTS_CLEANUP_CONCURRENCY": SECRET,
    }
    message = config_error(**env)
    assert SECRET not in message
    assert "MODELARTS_CLEANUP_CONCURRENCY" in message


def test_secrets_are_hidden_in_repr() -> None:
    s = settings(
        HUAWEICLOUD_SDK_AK="AK", HUAWEICLOUD_SDK_SK=SECRET, MODELARTS_CLEANUP_AUTH_TOKEN=SECRET
    )
    assert SECRET not in repr(s)
    assert SECRET not in str(s.model_dump())


def test_blank_values_count_as_unset() -> None:
    s = settings(HUAWEICLOUD_SDK_AK=" ", HUAWEICLOUD_SDK_SK="", MODELARTS_CLEANUP_TARGETS="")
    assert s.access_key is None and s.secret_key is None and s.targets == ()


def test_function_user_data_fills_what_the_environment_lacks() -> None:
    environ = {
        "MODELARTS_CLEANUP_REGION": "cn-north-4",
        "RUNTIME_USERDATA": json.dumps(
            {"MODELARTS_CLEANUP_DRY_RUN": "true", "MODELARTS_CLEANUP_REGION": "x"}
        ),
    }
    context = FunctionGraphContext(
        user_data={"MODELARTS_CLEANUP_CONCURRENCY": "3", "MODELARTS_CLEANUP_DRY_RUN": "false"}
    )
    merged = function_environment(context, environ)
    s = load_settings(merged)
    assert s.region == "cn-north-4"  # the environment wins
    assert s.dry_run is True  # RUNTIME_USERDATA before getUserData
    assert s.concurrency == 3  # getUserData last


def test_function_environment_without_context_is_the_environment() -> None:
    assert function_environment(None, {"A": "1"}) == {"A": "1"}


@pytest.mark.parametrize("raw", ["{", "[1]"])
def test_broken_runtime_userdata_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="RUNTIME_USERDATA"):
        function_environment(None, {"RUNTIME_USERDATA": raw})


def test_settings_ignore_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELARTS_CLEANUP_DRY_RUN", "true")
    assert settings().dry_run is False


RULE = {"project_id": P1, "statuses": ["STOPPED"], "idle_hours": 72}


@pytest.mark.parametrize("raw", ["", "  ", "[]", " [ ] "])
def test_no_default_selectors_when_the_setting_is_blank_or_an_empty_list(raw: str) -> None:
    assert settings(MODELARTS_CLEANUP_SELECTORS=raw).selectors == ()


def test_default_selectors_are_checked_as_a_payloads_are() -> None:
    rules = [RULE, {**RULE, "name_pattern": "tmp-*", "grace_hours": 48}]
    chosen = settings(MODELARTS_CLEANUP_SELECTORS=json.dumps(rules)).selectors
    assert chosen == tuple(Selector.model_validate(r) for r in rules)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", ["MODELARTS_CLEANUP_SELECTORS: not valid JSON"]),
        (json.dumps(RULE), ["MODELARTS_CLEANUP_SELECTORS: must be a JSON list of selectors"]),
        ("tmp-*", ["MODELARTS_CLEANUP_SELECTORS: not valid JSON"]),
        (
            json.dumps([RULE, "STOPPED", {**RULE, "idle_hours": -1}, {**RULE, "colour": 1}]),
            [
                "MODELARTS_CLEANUP_SELECTORS[1]: must be an object, not a string",
                "MODELARTS_CLEANUP_SELECTORS[2].idle_hours:",
                "MODELARTS_CLEANUP_SELECTORS[3].colour: unknown key",
            ],
        ),
        (
            json.dumps([RULE] * (MAX_SELECTORS + 1)),
            [f"MODELARTS_CLEANUP_SELECTORS: at most {MAX_SELECTORS} selectors"],
        ),
        ('[{"project_id": "a", "project_id": "b"}]', ["MODELARTS_CLEANUP_SELECTORS"]),
    ],
)
def test_invalid_default_selectors_name_the_setting_and_each_position(
    raw: str, expected: list[str]
) -> None:
    message = config_error(MODELARTS_CLEANUP_REGION="cn-north-4", MODELARTS_CLEANUP_SELECTORS=raw)
    lines = [line.removeprefix("  - ") for line in message.splitlines()[1:]]
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


def test_a_bad_selector_setting_is_listed_with_every_other_bad_setting() -> None:
    message = config_error(
        MODELARTS_CLEANUP_REGION="cn-north-4",
        MODELARTS_CLEANUP_CONCURRENCY="0",
        MODELARTS_CLEANUP_SELECTORS=json.dumps([{**RULE, "idle_hours": "soon"}]),
    )
    assert "MODELARTS_CLEANUP_CONCURRENCY:" in message
    assert "MODELARTS_CLEANUP_SELECTORS[0].idle_hours:" in message


def test_a_bad_selector_setting_never_echoes_what_it_holds() -> None:
    rule = {**RULE, "idle_hours": SECRET, "statuses": [SECRET], "unknown": SECRET}
    message = config_error(
        MODELARTS_CLEANUP_REGION="cn-north-4", MODELARTS_CLEANUP_SELECTORS=json.dumps([rule])
    )
    assert "[0].idle_hours" in message and "[0].unknown" in message
    assert SECRET not in message


TOPIC = f"urn:smn:ap-southeast-3:{P1}:cleanup-digest"


def test_a_topic_publishes_to_its_own_regions_smn_with_its_project() -> None:
    s = settings(MODELARTS_CLEANUP_NOTIFY_TOPIC=f"  {TOPIC} ", MODELARTS_CLEANUP_NOTIFY_ON="Always")
    assert s.topic is not None
    assert (s.topic.region, s.topic.project_id, s.topic.name) == (
        "ap-southeast-3",
        P1,
        "cleanup-digest",
    )
    assert str(s.topic) == TOPIC
    # The topic's region, not the function's (cn-north-4).
    assert s.smn_base_url == "https://smn.ap-southeast-3.myhuaweicloud.com"
    assert s.notify_on == "always"


def test_the_smn_endpoint_setting_overrides_the_topics_region() -> None:
    s = settings(
        MODELARTS_CLEANUP_NOTIFY_TOPIC=TOPIC,
        MODELARTS_CLEANUP_SMN_ENDPOINT="https://smn.example.internal:8443/",
    )
    assert s.smn_base_url == "https://smn.example.internal:8443"


def test_a_blank_topic_is_unset_and_needs_nothing_else() -> None:
    s = settings(MODELARTS_CLEANUP_NOTIFY_TOPIC="  ", MODELARTS_CLEANUP_NOTIFY_ON="problems")
    assert s.topic is None and s.smn_base_url is None


@pytest.mark.parametrize(
    ("urn", "why"),
    [
        ("cleanup-digest", "must be an SMN topic URN"),
        (f"urn:sns:cn-north-4:{P1}:t", "must be an SMN topic URN"),
        (f"urn:smn:cn-north-4:{P1}:t:extra", "must be an SMN topic URN"),
        (f"urn:smn:CN_North:{P1}:t", "region"),
        ("urn:smn:cn-north-4:ED43AEF64DFF4E5C81CB84B71ADCB3FD:t", "project ID"),
        (f"urn:smn:cn-north-4:{P1}:-starts-with-hyphen", "topic name"),
        (f"urn:smn:cn-north-4:{P1}:" + "t" * 256, "topic name"),
        (f"urn:smn:cn-north-4:{P1}:has space", "topic name"),
    ],
)
def test_a_malformed_topic_is_refused_naming_the_part(urn: str, why: str) -> None:
    message = config_error(
        MODELARTS_CLEANUP_REGION="cn-north-4", MODELARTS_CLEANUP_NOTIFY_TOPIC=urn
    )
    assert "MODELARTS_CLEANUP_NOTIFY_TOPIC" in message
    assert why in message


def test_notify_on_takes_only_its_three_modes() -> None:
    message = config_error(
        MODELARTS_CLEANUP_REGION="cn-north-4", MODELARTS_CLEANUP_NOTIFY_ON="errors"
    )
    assert "MODELARTS_CLEANUP_NOTIFY_ON" in message
    for mode in ("changes", "problems", "always"):
        assert settings(MODELARTS_CLEANUP_NOTIFY_ON=mode).notify_on == mode


def test_a_plain_http_smn_endpoint_needs_allow_http() -> None:
    message = config_error(
        MODELARTS_CLEANUP_REGION="cn-north-4",
        MODELARTS_CLEANUP_NOTIFY_TOPIC=TOPIC,
        MODELARTS_CLEANUP_SMN_ENDPOINT="http://127.0.0.1:9000",
    )
    assert "MODELARTS_CLEANUP_SMN_ENDPOINT is plain http://" in message
    allowed = settings(
        MODELARTS_CLEANUP_NOTIFY_TOPIC=TOPIC,
        MODELARTS_CLEANUP_SMN_ENDPOINT="http://127.0.0.1:9000",
        MODELARTS_CLEANUP_ALLOW_HTTP="true",
    )
    assert allowed.smn_base_url == "http://127.0.0.1:9000"


def test_an_smn_endpoint_holding_credentials_is_refused_without_echoing_them() -> None:
    message = config_error(
        MODELARTS_CLEANUP_REGION="cn-north-4",
        MODELARTS_CLEANUP_SMN_ENDPOINT=f"https://user:{SECRET}@smn.example.com",
    )
    assert "MODELARTS_CLEANUP_SMN_ENDPOINT" in message
    assert "must not hold credentials" in message
    assert SECRET not in message
