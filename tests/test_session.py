"""The HTTP session: a pool that fits the concurrency, the auth, proxy and CA read once."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from modelarts_cleanup import __version__
from modelarts_cleanup.cloud.client import ModelArtsClient
from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.cloud.transport import Transport
from modelarts_cleanup.vocabulary import ApiGeneration
from tests.mocked_modelarts import (
    ENDPOINT,
    TokenAuth,
)


@pytest.mark.parametrize(("pool_size", "expected"), [(1, 10), (10, 10), (16, 16), (64, 64)])
def test_new_session_pool_fits_the_concurrency(pool_size: int, expected: int) -> None:
    session = new_session(pool_size)
    for scheme in ("https://", "http://"):
        adapter = session.get_adapter(f"{scheme}modelarts.example.invalid")
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == expected
        assert adapter.max_retries.total == 0
    assert session.verify is True
    assert session.headers["User-Agent"] == f"modelarts-cleanup/{__version__}"
    assert session.auth is None


def test_new_session_installs_the_auth() -> None:
    auth = TokenAuth()
    assert new_session(8, auth=auth).auth is auth


def test_new_session_refuses_an_empty_pool() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        new_session(0)


def test_proxy_and_ca_bundle_from_the_environment_are_read_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not used: nothing is sent")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.invalid:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    session = new_session(2)
    ModelArtsClient(Transport(session=session, endpoint=ENDPOINT), api=ApiGeneration.NOTEBOOK)
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.example.invalid:3128"
    assert session.verify == str(bundle)


def test_without_environment_settings_verification_stays_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    session = new_session(2)
    ModelArtsClient(Transport(session=session, endpoint=ENDPOINT), api=ApiGeneration.NOTEBOOK)
    assert session.verify is True
    assert session.trust_env is False
