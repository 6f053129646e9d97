"""Where requests go: a region's public endpoint, or a base URL checked once."""

from __future__ import annotations

import pytest
import responses

from modelarts_cleanup.cloud.endpoint import endpoint_for_region
from modelarts_cleanup.exceptions import ConfigurationError
from tests.mocked_modelarts import (
    INSTANCE,
    PROJECT,
    SECRET,
    mocked_client,
)
from tests.support import FakeTime


def test_endpoint_for_region_builds_the_public_endpoint() -> None:
    assert endpoint_for_region("cn-north-4") == "https://modelarts.cn-north-4.myhuaweicloud.com"
    assert endpoint_for_region("ap-southeast-3") == (
        "https://modelarts.ap-southeast-3.myhuaweicloud.com"
    )


@pytest.mark.parametrize(
    "region",
    [
        "",
        "CN-North-4",
        "cn_north_4",
        "cn-north-4.evil.example",
        "cn-north-4/",
        "-cn",
        "cn--4",
        "a b",
    ],
)
def test_endpoint_for_region_refuses_malformed_regions(region: str) -> None:
    with pytest.raises(ConfigurationError):
        endpoint_for_region(region)


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://modelarts.example.invalid",
        "modelarts.example.invalid",
        "https://",
        "https://modelarts.example.invalid/?x=1",
        "https://modelarts.example.invalid:99999",
    ],
)
def test_client_refuses_malformed_endpoints(endpoint: str, fake_time: FakeTime) -> None:
    with pytest.raises(ConfigurationError):
        mocked_client(fake_time, endpoint=endpoint)


def test_endpoint_with_credentials_is_refused_without_echoing_them(fake_time: FakeTime) -> None:
    with pytest.raises(ConfigurationError) as caught:
        mocked_client(fake_time, endpoint=f"https://ak:{SECRET}@modelarts.example.invalid")
    assert SECRET not in str(caught.value)


def test_endpoint_path_prefix_is_kept_and_trailing_slash_dropped(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.delete(f"http://127.0.0.1:8080/proxy/v1/{PROJECT}/notebooks/{INSTANCE}", json={})
    client = mocked_client(fake_time, endpoint="http://127.0.0.1:8080/proxy/")
    assert client.delete_instance(PROJECT, INSTANCE).outcome == "deleted"
