"""Where credentials come from, in order, and that none of them leaks."""

from __future__ import annotations

import pytest
import requests

from modelarts_cleanup.cloud.credentials import AkSk, IamToken, TokenAuth, resolve_credentials
from modelarts_cleanup.exceptions import CredentialsError
from modelarts_cleanup.settings import Settings, load_settings
from tests.support import FunctionGraphContext

SK, TOKEN, IAM = "settings-sk-SECRET", "agency-token-SECRET", "iam-token-SECRET"


def settings(**env: str) -> Settings:
    return load_settings({"MODELARTS_CLEANUP_REGION": "cn-north-4", **env})


AGENCY = ("AGENCYAK", "agency-sk-SECRET", TOKEN)
AGENCY_GETTERS = {"getSecurityAccessKey", "getSecuritySecretKey", "getSecurityToken"}


def test_settings_key_pair_comes_first() -> None:
    creds = resolve_credentials(
        settings(HUAWEICLOUD_SDK_AK="AK", HUAWEICLOUD_SDK_SK=SK, MODELARTS_CLEANUP_AUTH_TOKEN=IAM),
        FunctionGraphContext(agency_keys=AGENCY, token=IAM),
    )
    assert isinstance(creds, AkSk)
    assert (creds.access_key, creds.secret_key.get_secret_value(), creds.source) == (
        "AK",
        SK,
        "settings",
    )
    assert creds.security_token is None


def test_agency_triple_is_used_when_nothing_is_configured() -> None:
    creds = resolve_credentials(settings(), FunctionGraphContext(agency_keys=AGENCY, token=IAM))
    assert isinstance(creds, AkSk)
    assert creds.source == "agency"
    assert creds.security_token is not None and creds.security_token.get_secret_value() == TOKEN


def test_empty_agency_strings_mean_no_agency() -> None:
    context = FunctionGraphContext(agency_keys=("", "", ""), token=IAM)
    creds = resolve_credentials(settings(), context)
    assert isinstance(creds, IamToken)
    assert creds.source == "context"


def test_configured_iam_token_beats_the_context_token() -> None:
    creds = resolve_credentials(
        settings(MODELARTS_CLEANUP_AUTH_TOKEN=IAM), FunctionGraphContext(token="other")
    )
    assert isinstance(creds, IamToken)
    assert creds.source == "settings"


@pytest.mark.parametrize(
    "context", [None, object(), FunctionGraphContext(token="", missing=AGENCY_GETTERS)]
)
def test_no_credentials_is_one_clear_error(context: object) -> None:
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(settings(), context)
    message = str(caught.value)
    assert (
        "agency" in message
        and "HUAWEICLOUD_SDK_AK" in message
        and "MODELARTS_CLEANUP_AUTH_TOKEN" in message
    )


def test_token_auth_sets_the_header_and_hides_the_token() -> None:
    creds = resolve_credentials(settings(MODELARTS_CLEANUP_AUTH_TOKEN=IAM), None)
    auth = creds.auth()
    assert isinstance(auth, TokenAuth)
    prepared = requests.Request(
        "GET", "https://modelarts.example.com/v1/p/notebooks", auth=auth
    ).prepare()
    assert prepared.headers["X-Auth-Token"] == IAM
    assert IAM not in repr(auth) and IAM not in repr(creds)


def test_credentials_never_show_secrets_in_repr() -> None:
    creds = resolve_credentials(settings(), FunctionGraphContext(agency_keys=AGENCY))
    text = repr(creds) + str(creds) + repr(creds.auth())
    assert "agency-sk-SECRET" not in text and TOKEN not in text
