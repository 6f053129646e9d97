"""Transport safety: no plain HTTP unless asked for, and TLS verification that cannot be turned off.

The TLS tests run the local endpoint over HTTPS with certificates made by `openssl` for the
occasion: a self-signed one (never trusted) and, as a control, the same one trusted explicitly
through REQUESTS_CA_BUNDLE, which proves the failures are about trust and nothing else.
"""

from __future__ import annotations

import io
import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.entry import run_function
from modelarts_cleanup.exceptions import ConfigurationError
from modelarts_cleanup.settings import ENV_NAMES, Settings, load_settings
from modelarts_cleanup.testing import FakeModelArts
from tests.support import endpoint_environ, invoke_with, local_endpoint, no_sleep

PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
ALLOW_HTTP = "MODELARTS_CLEANUP_ALLOW_HTTP"

# Names someone might reach for to switch verification off; none of them may do anything.
WOULD_BE_SWITCHES = {
    "MODELARTS_CLEANUP_VERIFY": "false",
    "MODELARTS_CLEANUP_VERIFY_SSL": "false",
    "MODELARTS_CLEANUP_SSL_VERIFY": "0",
    "MODELARTS_CLEANUP_TLS_VERIFY": "false",
    "MODELARTS_CLEANUP_INSECURE": "true",
    "MODELARTS_CLEANUP_SKIP_TLS_VERIFY": "true",
    "MODELARTS_CLEANUP_CA_BUNDLE": "",
    "PYTHONHTTPSVERIFY": "0",
    "CURL_CA_BUNDLE": "",
    "REQUESTS_CA_BUNDLE": "",
}
OURS = {k: v for k, v in WOULD_BE_SWITCHES.items() if k.startswith("MODELARTS_CLEANUP_")}
OTHERS = {k: v for k, v in WOULD_BE_SWITCHES.items() if k not in OURS}


def environ(url: str, **extra: str) -> dict[str, str]:
    """Settings for `url` that, unlike a local test's, do not permit plain HTTP by default."""
    # Named targets straight to DELETE: the one request whose handshake these tests watch.
    settings = {"MODELARTS_CLEANUP_MAX_ATTEMPTS": "3", "MODELARTS_CLEANUP_PROTECT_TAGS": "[]"}
    return endpoint_environ(url, allow_http=False, **{**settings, **extra})


def event(instance: str) -> dict[str, Any]:
    return {"targets": [{"project_id": PROJECT, "instance_id": instance}]}


def run(url: str, instance: str, **env: str) -> dict[str, Any]:
    return run_function(
        event(instance), None, environ=environ(url, **env), log_stream=io.StringIO(), sleep=no_sleep
    )


def invoke(url: str, instance: str, **env: str) -> subprocess.CompletedProcess[str]:
    return invoke_with(environ(url, **env), "--event", "-", stdin=json.dumps(event(instance)))


# -- plain HTTP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("allow", [None, "false", "0", "no", "off"])
def test_plain_http_endpoint_is_refused_unless_allowed(
    fake: FakeModelArts, allow: str | None
) -> None:
    instance = fake.add_instance(PROJECT)
    env = {} if allow is None else {ALLOW_HTTP: allow}
    with pytest.raises(ConfigurationError, match=ALLOW_HTTP) as raised:
        run(fake.url, instance, **env)
    assert "plain http://" in str(raised.value)
    assert fake.requests == []
    assert fake.instance_ids() == {(PROJECT, instance)}


def test_plain_http_works_when_explicitly_allowed(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    report = run(fake.url, instance, **{ALLOW_HTTP: "true"})
    assert report["results"][0]["outcome"] == "deleted"


# URL schemes are case-insensitive: "HTTP://host" is plain HTTP too, and must be refused
# without MODELARTS_CLEANUP_ALLOW_HTTP, or the signed request and its token go out in clear.
@pytest.mark.parametrize("scheme", ["HTTP", "Http", "hTtP"])
def test_plain_http_is_refused_whatever_the_case_of_the_scheme(
    fake: FakeModelArts, scheme: str
) -> None:
    instance = fake.add_instance(PROJECT)
    url = scheme + fake.url.removeprefix("http")
    try:
        report: dict[str, Any] | None = run(url, instance)
    except ConfigurationError as exc:
        report = None
        # Checked here, not with pytest.raises: the request log is the evidence worth showing.
        assert ALLOW_HTTP in str(exc)  # noqa: PT017
    assert fake.requests == [], "a signed request went out over plain HTTP"
    assert report is None


def test_invoke_with_plain_http_exits_2_and_sends_nothing(fake: FakeModelArts) -> None:
    instance = fake.add_instance(PROJECT)
    done = invoke(fake.url, instance)
    assert done.returncode == 2
    assert done.stdout == ""
    assert ALLOW_HTTP in json.loads(done.stderr)["message"]
    assert fake.requests == []


# -- TLS verification ------------------------------------------------------------------------------


def test_sessions_verify_certificates() -> None:
    for pool_size in (1, 8, 64):
        with new_session(pool_size) as session:
            assert session.verify is True


def test_no_setting_can_switch_verification_off() -> None:
    fields = " ".join([*Settings.model_fields, *ENV_NAMES]).lower()
    for word in ("verify", "insecure", "ssl", "tls", "cert", "ca_bundle"):
        assert word not in fields
    # Ours are refused outright (not a setting); the others are no business of the settings.
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", **WOULD_BE_SWITCHES})
    for name in OURS:
        assert f"{name}: not a setting" in str(raised.value)
    settings = load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", **OTHERS})
    assert settings.base_url == "https://modelarts.cn-north-4.myhuaweicloud.com"
    assert not set(WOULD_BE_SWITCHES) & set(settings.model_dump())


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(directory: Path, name: str, san: str) -> Certificate:
    """A self-signed certificate (its own CA) for `san`, made with the openssl command."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "these tests need the openssl command"
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName={san}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Certificate(cert, key)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificate]:
    directory = tmp_path_factory.mktemp("tls")
    return {
        "loopback": make_certificate(directory, "loopback", "IP:127.0.0.1"),
        "elsewhere": make_certificate(directory, "elsewhere", "DNS:modelarts.example.invalid"),
    }


@pytest.fixture
def tls_fake(certificates: dict[str, Certificate]) -> Iterator[FakeModelArts]:
    context = certificates["loopback"].server_context()
    with local_endpoint(ssl_context=context) as server:
        yield server


def assert_tls_refused(report: dict[str, Any], fake: FakeModelArts, instance: str) -> None:
    (result,) = report["results"]
    assert (result["outcome"], result["error_code"]) == ("failed", "SSLError")
    assert result["attempts"] == 1  # a certificate problem is not retried
    assert result["http_status"] is None
    assert "TLS" in result["error_msg"]
    assert report["status"] == "failed"
    assert fake.requests == []  # not one HTTP request got through the handshake
    assert fake.instance_ids() == {(PROJECT, instance)}


def test_self_signed_certificate_is_refused(tls_fake: FakeModelArts) -> None:
    instance = tls_fake.add_instance(PROJECT)
    assert tls_fake.url.startswith("https://")
    assert_tls_refused(run(tls_fake.url, instance), tls_fake, instance)


@pytest.mark.parametrize("name", sorted(WOULD_BE_SWITCHES))
def test_no_environment_variable_switches_verification_off(
    tls_fake: FakeModelArts, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Set both where settings look (the environ mapping) and where requests looks (os.environ).
    value = WOULD_BE_SWITCHES[name]
    monkeypatch.setenv(name, value)
    instance = tls_fake.add_instance(PROJECT)
    if name in OURS:
        with pytest.raises(ConfigurationError, match=f"{name}: not a setting"):
            run(tls_fake.url, instance, **{name: value})
        assert tls_fake.requests == []
        return
    assert_tls_refused(run(tls_fake.url, instance, **{name: value}), tls_fake, instance)


def test_all_would_be_switches_at_once_switch_nothing_off(
    tls_fake: FakeModelArts, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in WOULD_BE_SWITCHES.items():
        monkeypatch.setenv(name, value)
    instance = tls_fake.add_instance(PROJECT)
    with pytest.raises(ConfigurationError):
        run(tls_fake.url, instance, **WOULD_BE_SWITCHES)
    assert_tls_refused(run(tls_fake.url, instance, **OTHERS), tls_fake, instance)


def test_trusting_the_certificate_explicitly_lets_the_same_run_through(
    tls_fake: FakeModelArts, certificates: dict[str, Certificate], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control: same endpoint, same run, only the trust differs. REQUESTS_CA_BUNDLE chooses
    # which CA to trust; it verifies as strictly as ever (next test).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates["loopback"].cert))
    instance = tls_fake.add_instance(PROJECT)
    report = run(tls_fake.url, instance)
    assert report["results"][0]["outcome"] == "deleted"
    assert [(r.method, r.status) for r in tls_fake.requests] == [("DELETE", 200)]


def test_a_trusted_certificate_for_another_host_is_refused(
    certificates: dict[str, Certificate], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates["elsewhere"].cert))
    context = certificates["elsewhere"].server_context()
    with local_endpoint(ssl_context=context) as fake:
        instance = fake.add_instance(PROJECT)
        assert_tls_refused(run(fake.url, instance), fake, instance)


def test_invoke_against_a_self_signed_endpoint_fails_with_exit_1(tls_fake: FakeModelArts) -> None:
    instance = tls_fake.add_instance(PROJECT)
    done = invoke(tls_fake.url, instance)
    assert done.returncode == 1
    (result,) = json.loads(done.stdout)["results"]
    assert (result["outcome"], result["error_code"]) == ("failed", "SSLError")
    assert tls_fake.requests == []
