"""SDK-HMAC-SHA256 signing: published vectors, canonical forms, the auth hook, verify, secrets,
and a cross-check against the official SDK's signer on generated requests."""

from __future__ import annotations

import io
import json
import random
import string
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, quote_plus, urlsplit

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials  # type: ignore[import-untyped]
from huaweicloudsdkcore.sdk_request import SdkRequest  # type: ignore[import-untyped]
from huaweicloudsdkcore.signer.signer import Signer  # type: ignore[import-untyped]
from pydantic import SecretStr

from modelarts_cleanup.cloud.signer import (
    EMPTY_BODY_SHA256,
    SIGNING_ALGORITHM,
    SdkHmacSha256Auth,
    authorization,
    canonical_query,
    canonical_request,
    canonical_uri,
    sdk_date,
    signature,
    signed_header_names,
)
from modelarts_cleanup.exceptions import CredentialsError
from modelarts_cleanup.testing.signature import verify

# --- published test vectors (SDKv3 huaweicloud-sdk-core/tests/test_signer.py) -----------------

VECTOR_HOST = "service.endpoint.myhuaweicloud.com"
VECTOR_DATE = "20200608T023900Z"
VECTOR_NOW = datetime(2020, 6, 8, 2, 39, 0, tzinfo=timezone.utc)
VECTORS = [
    pytest.param(
        "GET", b"", "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842", id="GET"
    ),
    pytest.param(
        "POST",
        b'{"name":"test","id":1}',
        "436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f",
        id="POST",
    ),
]


def _fixed(now: datetime) -> Callable[[], datetime]:
    return lambda: now


@pytest.mark.parametrize(("method", "body", "expected"), VECTORS)
def test_published_vector_through_pure_functions(method: str, body: bytes, expected: str) -> None:
    headers = {"Host": VECTOR_HOST, "X-Sdk-Date": VECTOR_DATE, "TEST_UNDERSCORE": "TEST_VALUE"}
    signed = signed_header_names(headers)
    canonical = canonical_request(method, "/resources", "size=1", headers, signed, body)
    sig = signature("SecretKey", VECTOR_DATE, canonical)

    assert signed == ["host", "x-sdk-date"]
    assert sig == expected
    assert authorization("AccessKey", signed, sig) == (
        f"SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, Signature={expected}"
    )


@pytest.mark.parametrize(("method", "body", "expected"), VECTORS)
def test_published_vector_through_auth_hook(method: str, body: bytes, expected: str) -> None:
    auth = SdkHmacSha256Auth("AccessKey", "SecretKey", clock=_fixed(VECTOR_NOW))
    prepared = requests.Request(
        method,
        f"https://{VECTOR_HOST}/resources?size=1",
        headers={"TEST_UNDERSCORE": "TEST_VALUE"},
        data=body,
    ).prepare()

    signed = auth(prepared)

    assert signed.headers["X-Sdk-Date"] == VECTOR_DATE
    assert signed.headers["Host"] == VECTOR_HOST
    assert signed.headers["TEST_UNDERSCORE"] == "TEST_VALUE"  # sent, but not signed
    assert signed.headers["Authorization"] == (
        f"SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, Signature={expected}"
    )


def test_canonical_request_layout_has_blank_line_before_signed_headers() -> None:
    headers = {"Host": VECTOR_HOST, "X-Sdk-Date": VECTOR_DATE}
    canonical = canonical_request(
        "get", "/resources", "size=1", headers, ["host", "x-sdk-date"], b""
    )

    assert canonical == (
        "GET\n/resources/\nsize=1\n"
        f"host:{VECTOR_HOST}\nx-sdk-date:{VECTOR_DATE}\n\n"
        f"host;x-sdk-date\n{EMPTY_BODY_SHA256}"
    )
    assert EMPTY_BODY_SHA256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert SIGNING_ALGORITHM == "SDK-HMAC-SHA256"


# --- canonical pieces -----------------------------------------------------------------------


def test_sdk_date_converts_to_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    assert sdk_date(datetime(2020, 6, 8, 10, 39, 0, tzinfo=beijing)) == VECTOR_DATE


def test_sdk_date_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sdk_date(datetime(2020, 6, 8, 2, 39, 0))  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/resources", "/resources/"),
        ("/", "/"),
        ("", "/"),
        ("/v1/abc/notebooks/", "/v1/abc/notebooks/"),
        ("/a b/ü", "/a%20b/%C3%BC/"),
        ("/a%20b/%C3%BC", "/a%20b/%C3%BC/"),
        ("/x~y/%7E", "/x~y/~/"),
        # The SDK unquotes the whole path before splitting: an encoded slash separates segments.
        ("/a%2Fb", "/a/b/"),
        # In a path '+' is a plus, never a space.
        ("/a+b", "/a%2Bb/"),
        ("/a:b@c!$&'()*,;=", "/a%3Ab%40c%21%24%26%27%28%29%2A%2C%3B%3D/"),
        ("/50%25", "/50%25/"),
        # Not UTF-8: kept as the same bytes (the SDK would turn it into U+FFFD; it never sends one).
        ("/%FF", "/%FF/"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("size=1", "size=1"),
        ("z=1&a=2", "a=2&z=1"),
        ("a=2&b=1&a=1", "a=1&a=2&b=1"),
        ("name=my+notebook", "name=my%20notebook"),
        ("name=my%20notebook", "name=my%20notebook"),
        ("q=a%2Bb", "q=a%2Bb"),
        ("k=%7Ev~", "k=~v~"),
        ("n=中文", "n=%E4%B8%AD%E6%96%87"),
        ("f=a%26b%3Dc%2Fd%3Fe%23f", "f=a%26b%3Dc%2Fd%3Fe%23f"),
        ("flag&x=&&y", "flag=&x=&y="),
        ("=v", "=v"),
        ("k=a=b", "k=a%3Db"),
        # Sorted by the decoded key, as the SDK sorts its parameters: '.' < '/' and 'z' < 'é'.
        ("a%2Fb=2&a.b=1", "a.b=1&a%2Fb=2"),
        ("%C3%A9=1&z=2", "z=2&%C3%A9=1"),
    ],
)
def test_canonical_query(raw: str, expected: str) -> None:
    assert canonical_query(raw) == expected


def test_signed_header_names_are_lower_sorted_and_skip_underscores() -> None:
    headers = {"X-Sdk-Date": "d", "Host": "h", "Content-Type": "c", "TEST_UNDERSCORE": "v"}
    assert signed_header_names(headers) == ["content-type", "host", "x-sdk-date"]


def test_canonical_request_refuses_a_signed_header_that_is_absent() -> None:
    with pytest.raises(ValueError, match="x-project-id"):
        canonical_request("GET", "/", "", {"Host": "h"}, ["host", "x-project-id"], b"")


def test_canonical_request_refuses_conflicting_duplicate_headers() -> None:
    with pytest.raises(ValueError, match="given twice"):
        canonical_request("GET", "/", "", {"Host": "a", "host": "b"}, ["host"], b"")


# --- the auth hook ---------------------------------------------------------------------------

PROJECT = "0123456789abcdef0123456789abcdef"
NOW = datetime(2024, 5, 17, 9, 30, 15, tzinfo=timezone.utc)


def _prepare(url: str, **kwargs: object) -> requests.PreparedRequest:
    return requests.Request("GET", url, **kwargs).prepare()


def _auth(token: str | None = None) -> SdkHmacSha256Auth:
    return SdkHmacSha256Auth("AK-TEST", "sk-test", token, clock=_fixed(NOW))


def _signed_list(prepared: requests.PreparedRequest) -> str:
    header = str(prepared.headers["Authorization"])
    return header.split("SignedHeaders=")[1].split(",")[0]


def test_session_auth_signs_token_project_and_content_type_but_not_transport_headers() -> None:
    session = requests.Session()
    session.auth = _auth(token="tok-123")
    request = requests.Request(
        "POST",
        "https://modelarts.cn-north-4.myhuaweicloud.com/v1/p/notebooks/i/stop",
        headers={"X-Project-Id": PROJECT, "Content-Type": "application/json", "X_Ignored": "1"},
        data=b"{}",
    )

    prepared = session.prepare_request(request)

    assert prepared.headers["X-Security-Token"] == "tok-123"
    assert prepared.headers["User-Agent"]  # present from the session, yet not signed
    assert _signed_list(prepared) == "content-type;host;x-project-id;x-sdk-date;x-security-token"


@pytest.mark.parametrize(
    ("url", "params", "expected_query"),
    [
        pytest.param(
            "https://h/x", [("b", "2"), ("a", "2"), ("a", "1")], "a=1&a=2&b=2", id="repeat"
        ),
        pytest.param("https://h/x?z=1&a=2", None, "a=2&z=1", id="unsorted"),
        pytest.param("https://h/x", {"name": "my notebook"}, "name=my%20notebook", id="space"),
        pytest.param("https://h/x", {"q": "a+b"}, "q=a%2Bb", id="plus"),
        pytest.param("https://h/x", {"name": "中文"}, "name=%E4%B8%AD%E6%96%87", id="non-ascii"),
        pytest.param("https://h/x?k=%7Ev~", None, "k=~v~", id="tilde"),
        pytest.param("https://h/x", {"f": "a&b=c/d?e#f"}, "f=a%26b%3Dc%2Fd%3Fe%23f", id="reserved"),
        pytest.param("https://h/x?flag&x=", None, "flag=&x=", id="empty-values"),
        pytest.param("https://h/x", None, "", id="no-query"),
    ],
)
def test_query_goes_out_exactly_as_canonicalised(
    url: str, params: object, expected_query: str
) -> None:
    prepared = _auth()(_prepare(url, params=params))
    assert prepared.url is not None

    assert urlsplit(prepared.url).query == expected_query
    assert prepared.url == "https://h/x" + (f"?{expected_query}" if expected_query else "")


def test_signing_leaves_the_path_as_requests_encoded_it() -> None:
    prepared = _auth()(_prepare("https://h/v1/a b/%2F/ü?x=1"))
    assert prepared.url == "https://h/v1/a%20b/%2F/%C3%BC?x=1"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://h.example.com:443/x", "h.example.com"),
        ("http://h.example.com:80/x", "h.example.com"),
        ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
        ("https://h.example.com:80/x", "h.example.com:80"),
        ("http://[::1]:8080/x", "[::1]:8080"),
    ],
)
def test_host_header_keeps_only_a_non_default_port(url: str, host: str) -> None:
    assert _auth()(_prepare(url)).headers["Host"] == host


def test_an_explicit_host_header_is_kept_and_signed() -> None:
    prepared = _auth()(_prepare("http://127.0.0.1:8080/x", headers={"Host": "modelarts.test"}))
    assert prepared.headers["Host"] == "modelarts.test"
    assert _verify_prepared(prepared) is None


def test_resigning_replaces_the_date_and_signature() -> None:
    times = iter([NOW, NOW + timedelta(minutes=5)])
    auth = SdkHmacSha256Auth("AK-TEST", "sk-test", clock=lambda: next(times))
    prepared = auth(_prepare("https://h/x"))
    first = prepared.headers["Authorization"]

    auth(prepared)

    assert prepared.headers["X-Sdk-Date"] == "20240517T093515Z"
    assert prepared.headers["Authorization"] != first
    assert _verify_prepared(prepared) is None


def test_text_body_is_sent_as_the_utf8_bytes_that_were_signed() -> None:
    prepared = _auth()(requests.Request("POST", "https://h/x", data='{"n": "中文"}').prepare())

    assert prepared.body == '{"n": "中文"}'.encode()
    assert prepared.headers["Content-Length"] == str(len('{"n": "中文"}'.encode()))
    assert _verify_prepared(prepared) is None


def test_streamed_body_is_refused() -> None:
    prepared = requests.Request("POST", "https://h/x", data=io.BytesIO(b"abc")).prepare()
    with pytest.raises(TypeError, match="streamed"):
        _auth()(prepared)


def test_signed_header_values_are_sent_stripped() -> None:
    prepared = _auth()(_prepare("https://h/x", headers={"X-Project-Id": PROJECT + "  "}))
    assert prepared.headers["X-Project-Id"] == PROJECT
    assert _verify_prepared(prepared) is None


def test_caller_supplied_unsigned_payload_marker_matches_the_sdk() -> None:
    # The SDK adds X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD for non-JSON bodies and then signs the
    # marker instead of the body hash. We never add it, but honour it as the gateway does.
    body = b"raw bytes"
    headers = {
        "Content-Type": "application/octet-stream",
        "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD",
    }
    ours = _auth()(requests.Request("PUT", "https://h/x", headers=headers, data=body).prepare())
    sdk = _sdk_sign(
        method="PUT",
        host="h",
        path="/x",
        query=[],
        headers={"Content-Type": "application/octet-stream", "X-Sdk-Date": sdk_date(NOW)},
        body=body,
        ak="AK-TEST",
        sk="sk-test",
        project_id=None,
        token=None,
    )
    assert sdk.header_params["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert ours.headers["Authorization"] == sdk.header_params["Authorization"]


# --- verify (the local fake's side) ----------------------------------------------------------


def _verify_prepared(
    prepared: requests.PreparedRequest, *, ak: str = "AK-TEST", sk: str = "sk-test"
) -> str | None:
    assert prepared.url is not None
    assert prepared.method is not None
    parts = urlsplit(prepared.url)
    body = prepared.body if isinstance(prepared.body, bytes) else b""
    headers = {name: str(value) for name, value in prepared.headers.items()}
    return verify(
        prepared.method, parts.path, parts.query, headers, body, access_key=ak, secret_key=sk
    )


@pytest.fixture
def signed_post() -> requests.PreparedRequest:
    return _auth(token="tok-123")(
        requests.Request(
            "POST",
            "https://h/v1/p/notebooks/a%20b?z=%E4%B8%AD&a=1&a=0",
            headers={"X-Project-Id": PROJECT, "Content-Type": "application/json"},
            json={"action": "stop"},
        ).prepare()
    )


def test_verify_accepts_our_own_signature(signed_post: requests.PreparedRequest) -> None:
    assert _verify_prepared(signed_post) is None


def test_verify_accepts_lower_cased_header_names(signed_post: requests.PreparedRequest) -> None:
    assert signed_post.url is not None
    parts = urlsplit(signed_post.url)
    headers = {name.lower(): str(value) for name, value in signed_post.headers.items()}
    body = signed_post.body
    assert isinstance(body, bytes)
    result = verify(
        "POST", parts.path, parts.query, headers, body, access_key="AK-TEST", secret_key="sk-test"
    )
    assert result is None


def test_verify_ignores_a_changed_unsigned_header(signed_post: requests.PreparedRequest) -> None:
    signed_post.headers["User-Agent"] = "something-else"
    assert _verify_prepared(signed_post) is None


def test_verify_rejects_a_wrong_secret_key(signed_post: requests.PreparedRequest) -> None:
    assert _verify_prepared(signed_post, sk="other-sk") == "signature mismatch"


def test_verify_rejects_a_wrong_access_key(signed_post: requests.PreparedRequest) -> None:
    assert _verify_prepared(signed_post, ak="OTHER-AK") == "wrong access key"


def test_verify_rejects_a_tampered_body(signed_post: requests.PreparedRequest) -> None:
    signed_post.body = b'{"action": "start"}'
    assert _verify_prepared(signed_post) == "signature mismatch"


def test_verify_rejects_a_tampered_query(signed_post: requests.PreparedRequest) -> None:
    assert signed_post.url is not None
    signed_post.url = signed_post.url.replace("a=1", "a=2")
    assert _verify_prepared(signed_post) == "signature mismatch"


def test_verify_rejects_a_tampered_path(signed_post: requests.PreparedRequest) -> None:
    assert signed_post.url is not None
    signed_post.url = signed_post.url.replace("a%20b", "a%20c")
    assert _verify_prepared(signed_post) == "signature mismatch"


@pytest.mark.parametrize("name", ["X-Project-Id", "X-Security-Token", "Host", "Content-Type"])
def test_verify_rejects_a_tampered_signed_header(
    signed_post: requests.PreparedRequest, name: str
) -> None:
    signed_post.headers[name] = "tampered"
    assert _verify_prepared(signed_post) == "signature mismatch"


def test_verify_rejects_a_dropped_signed_header(signed_post: requests.PreparedRequest) -> None:
    del signed_post.headers["Content-Type"]
    assert _verify_prepared(signed_post) == "signed header missing"


def test_verify_rejects_a_missing_authorization(signed_post: requests.PreparedRequest) -> None:
    del signed_post.headers["Authorization"]
    assert _verify_prepared(signed_post) == "missing Authorization"


def test_verify_rejects_a_missing_date(signed_post: requests.PreparedRequest) -> None:
    del signed_post.headers["X-Sdk-Date"]
    assert _verify_prepared(signed_post) == "X-Sdk-Date missing"


def test_verify_rejects_a_malformed_date(signed_post: requests.PreparedRequest) -> None:
    signed_post.headers["X-Sdk-Date"] = "2024-05-17T09:30:15Z"
    assert _verify_prepared(signed_post) == "X-Sdk-Date malformed"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "Bearer abc",
        "SDK-HMAC-SHA256 Access=AK-TEST",
        "SDK-HMAC-SHA256 Access=AK-TEST, SignedHeaders=host;x-sdk-date, Signature=nothex",
        "SDK-HMAC-SHA256 Access=AK-TEST, SignedHeaders=host;x-sdk-date, Signature=" + "a" * 63,
        "SDK-HMAC-SHA256 SignedHeaders=host, Access=AK-TEST, Signature=" + "a" * 64,
    ],
)
def test_verify_rejects_a_malformed_authorization(
    signed_post: requests.PreparedRequest, value: str
) -> None:
    signed_post.headers["Authorization"] = value
    assert _verify_prepared(signed_post) == "malformed Authorization"


def test_verify_rejects_another_algorithm(signed_post: requests.PreparedRequest) -> None:
    value = str(signed_post.headers["Authorization"]).replace("SDK-HMAC-SHA256", "SDK-HMAC-SM3")
    signed_post.headers["Authorization"] = value
    assert _verify_prepared(signed_post) == "unsupported signing algorithm"


def test_verify_rejects_a_security_token_left_out_of_the_signature() -> None:
    headers = {"Host": "h", "X-Sdk-Date": VECTOR_DATE, "X-Security-Token": "tok"}
    signed = ["host", "x-sdk-date"]
    sig = signature("sk", VECTOR_DATE, canonical_request("GET", "/", "", headers, signed, b""))
    headers["Authorization"] = authorization("ak", signed, sig)

    result = verify("GET", "/", "", headers, b"", access_key="ak", secret_key="sk")

    assert result == "x-security-token not signed"


def test_verify_rejects_a_signature_without_host() -> None:
    headers = {"Host": "h", "X-Sdk-Date": VECTOR_DATE}
    signed = ["x-sdk-date"]
    sig = signature("sk", VECTOR_DATE, canonical_request("GET", "/", "", headers, signed, b""))
    headers["Authorization"] = authorization("ak", signed, sig)

    assert (
        verify("GET", "/", "", headers, b"", access_key="ak", secret_key="sk") == "host not signed"
    )


# --- secrets ----------------------------------------------------------------------------------

SECRET_SK = "sk-super-secret-value-0001"
SECRET_TOKEN = "token-super-secret-value-0002"


def _exception_texts(exc: BaseException) -> Iterator[str]:
    seen: BaseException | None = exc
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        yield repr(seen.args)
        seen = seen.__cause__ or seen.__context__
    yield "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _assert_free_of(exc: BaseException, *secrets: str) -> None:
    for text in _exception_texts(exc):
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize("wrap", [str, SecretStr], ids=["str", "SecretStr"])
def test_repr_and_str_hide_the_secret_key_and_token(wrap: Callable[[str], object]) -> None:
    auth = SdkHmacSha256Auth("AK-TEST", wrap(SECRET_SK), wrap(SECRET_TOKEN))  # type: ignore[arg-type]

    for text in (repr(auth), str(auth), repr(vars(auth)) if hasattr(auth, "__dict__") else ""):
        assert SECRET_SK not in text
        assert SECRET_TOKEN not in text
    assert "AK-TEST" in repr(auth)


def test_secret_str_credentials_sign_like_plain_strings() -> None:
    plain = SdkHmacSha256Auth("AK", SECRET_SK, SECRET_TOKEN, clock=_fixed(NOW))
    wrapped = SdkHmacSha256Auth(
        "AK", SecretStr(SECRET_SK), SecretStr(SECRET_TOKEN), clock=_fixed(NOW)
    )
    assert plain(_prepare("https://h/x")).headers == wrapped(_prepare("https://h/x")).headers


@pytest.mark.parametrize(
    ("ak", "sk", "token"),
    [
        pytest.param("", SECRET_SK, None, id="empty-ak"),
        pytest.param("AK WITH SPACE", SECRET_SK, None, id="ak-space"),
        pytest.param("AK,comma", SECRET_SK, None, id="ak-comma"),
        pytest.param("AK", "", None, id="empty-sk"),
        pytest.param("AK", SECRET_SK + "\ud800", None, id="sk-surrogate"),
        pytest.param("AK", SECRET_SK, "", id="empty-token"),
        pytest.param("AK", SECRET_SK, SECRET_TOKEN + "\r\nX-Evil: 1", id="token-crlf"),
        pytest.param("AK", SECRET_SK, " " + SECRET_TOKEN, id="token-leading-space"),
        pytest.param("AK", SECRET_SK, SECRET_TOKEN + "é", id="token-non-ascii"),
    ],
)
def test_unusable_credentials_raise_without_revealing_them(
    ak: str, sk: str, token: str | None
) -> None:
    with pytest.raises(CredentialsError) as caught:
        SdkHmacSha256Auth(ak, sk, token)
    _assert_free_of(caught.value, SECRET_SK, SECRET_TOKEN)


def test_signature_with_an_unencodable_key_does_not_chain_the_key() -> None:
    with pytest.raises(ValueError, match="secret key") as caught:
        signature(SECRET_SK + "\udcff", VECTOR_DATE, "canonical")
    assert caught.value.__context__ is None
    _assert_free_of(caught.value, SECRET_SK)


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda r: setattr(r, "body", io.BytesIO(b"x")), id="stream"),
        pytest.param(lambda r: setattr(r, "url", None), id="no-url"),
        pytest.param(lambda r: setattr(r, "method", None), id="no-method"),
    ],
)
def test_errors_while_signing_do_not_reveal_secrets(
    break_it: Callable[[requests.PreparedRequest], None],
) -> None:
    auth = SdkHmacSha256Auth("AK", SECRET_SK, SECRET_TOKEN, clock=_fixed(NOW))
    prepared = _prepare("https://h/x")
    break_it(prepared)
    with pytest.raises((TypeError, ValueError)) as caught:
        auth(prepared)
    _assert_free_of(caught.value, SECRET_SK, SECRET_TOKEN)


def test_naive_clock_error_does_not_reveal_secrets() -> None:
    naive = datetime(2024, 1, 1)  # noqa: DTZ001 - the point of the test
    auth = SdkHmacSha256Auth("AK", SECRET_SK, SECRET_TOKEN, clock=lambda: naive)
    with pytest.raises(ValueError, match="timezone-aware") as caught:
        auth(_prepare("https://h/x"))
    _assert_free_of(caught.value, SECRET_SK, SECRET_TOKEN)


# --- cross-check against huaweicloudsdkcore -------------------------------------------------
#
# The official SDK is what the gateway accepts, so on every generated request our Authorization
# header must equal the SDK's, and the URL we send must equal the one the SDK's http client sends.
# Where the two take different inputs, this is how they are lined up (each is a deliberate choice):
#
# - Query '+': the SDK never sees a raw query; it takes decoded values and quotes them, so a space
#   goes out as %20 and a plus as %2B. We read a raw query, where requests' own `params=` encoding
#   writes a space as '+' and a plus as %2B, so we read '+' as a space. Both then send only %20 or
#   %2B: the gateway receives identical bytes. The generator feeds us queries in both spellings.
# - Empty values: the SDK drops parameters whose value is None and sends "" as `k=`. A raw `k` with
#   no '=' has no SDK spelling; we canonicalise and send it as `k=`, the SDK's form for "".
# - Sorting: the SDK sorts decoded (key, value) strings by code point, not the encoded text; we sort
#   decoded UTF-8 bytes, the same order. Keys with '.', '/' and non-ASCII exercise the difference.
# - Path: the SDK client quotes path parameters with safe='' (so '/' becomes %2F), and the signer
#   unquotes the whole path before splitting, so an encoded slash counts as a separator when signing
#   while still travelling as %2F. We do the same, since that is what the gateway checks.
# - Headers: the SDK signs every header it has; we sign host, content-type and x-* (proxies and
#   http.client may add or rewrite the rest). The SDK gets exactly the headers we sign, plus the
#   underscore header both skip; we also get Accept and User-Agent, which must stay unsigned.
# - Content types are JSON: for anything else the SDK adds X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD
#   (covered on its own above).

CROSS_CHECK_SEED = 20240517
CROSS_CHECK_COUNT = 256

HOSTS = [
    ("https", "modelarts.cn-north-4.myhuaweicloud.com"),
    ("http", "127.0.0.1:8080"),
    ("https", "modelarts.example.test:8443"),
]
PATH_SEGMENTS = [
    "v1", "notebooks", "demanager", "instances", PROJECT, "3f1c2a4e-0d5b-4c1a-9e77-2b8f6c0d9a11",
    "DE-3f1c2a4e-0d5b-4c1a-9e77-2b8f6c0d9a11", "a b", "ünïcödé", "中文", "~tilde~", "a+b", "a/b",
    "50%", "x:y@z", "!$&'()*,;=", "emoji🙂", "dots.and-dashes_", "%2F", "q?x#y",
]  # fmt: skip
QUERY_KEYS = [
    "limit",
    "offset",
    "status",
    "name",
    "a.b",
    "a/b",
    "é",
    "中",
    "k ey",
    "k+ey",
    "~k",
    "",
]
QUERY_VALUES = [
    "", "0", "10", "RUNNING", "a b", "a+b", "a+b c", "ü", "中文 名", "~x~", "a&b=c", "50%",
    "/path?x#frag", "é", "🙂", "x;y,z", "'quoted'", "%2F",
]  # fmt: skip
SECRET_KEYS = ["sk-simple", "SecretKey", "秘密キー-sk", "k" * 64, "with space and/slash"]
CUSTOM_VALUES = ["plain", "trailing  ", "ünï", "a, b; c"]


@dataclass(frozen=True)
class Case:
    method: str
    scheme: str
    host: str
    segments: tuple[str, ...]
    trailing_slash: bool
    pairs: tuple[tuple[str, str], ...]
    spelling: str  # how our raw query is written: "params", "quote", "plus", "raw", "mixed"
    body: bytes
    body_as_text: bool
    content_type: str | None
    project_id: str | None
    token: str | None
    custom: str | None
    ak: str
    sk: str
    now: datetime

    @property
    def path(self) -> str:
        # As the SDK client builds it: each path parameter quoted with safe=''.
        quoted = "/" + "/".join(quote(segment, safe="") for segment in self.segments)
        return quoted + "/" if self.trailing_slash else quoted


def _random_body(rng: random.Random) -> bytes:
    kind = rng.choice(["empty", "empty", "json", "unicode"])
    if kind == "empty":
        return b""
    document: dict[str, object] = {"action": rng.choice(["stop", "start"]), "n": rng.randint(0, 99)}
    if kind == "unicode":
        document["name"] = rng.choice(["中文笔记本", "ünïcödé", "emoji🙂", "a b+c"])
        return json.dumps(document, ensure_ascii=False).encode()
    return json.dumps(document).encode()


def _generate_cases(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        scheme, host = rng.choice(HOSTS)
        body = _random_body(rng)
        cases.append(
            Case(
                method=rng.choice(["GET", "POST", "DELETE", "PUT"]),
                scheme=scheme,
                host=host,
                segments=tuple(rng.choices(PATH_SEGMENTS, k=rng.randint(1, 5))),
                trailing_slash=rng.random() < 0.2,
                pairs=tuple(
                    (rng.choice(QUERY_KEYS), rng.choice(QUERY_VALUES))
                    for _ in range(rng.choice([0, 1, 2, 3, 5, 8]))
                ),
                spelling=rng.choice(["params", "quote", "plus", "raw", "mixed"]),
                body=body,
                body_as_text=bool(body) and rng.random() < 0.3,
                content_type=(
                    rng.choice(["application/json", "application/json;charset=UTF-8"])
                    if body or rng.random() < 0.3
                    else None
                ),
                project_id=PROJECT if rng.random() < 0.6 else None,
                token=(
                    "".join(rng.choices(string.ascii_letters + string.digits + "+/=-_", k=120))
                    if rng.random() < 0.5
                    else None
                ),
                custom=rng.choice(CUSTOM_VALUES) if rng.random() < 0.3 else None,
                ak="".join(rng.choices(string.ascii_uppercase + string.digits, k=20)),
                sk=rng.choice(SECRET_KEYS),
                now=datetime(2020, 1, 1, tzinfo=timezone.utc)
                + timedelta(seconds=rng.randrange(10 * 365 * 86400)),
            )
        )
    return cases


def _spell(text: str, style: str) -> str:
    if style == "quote":
        return quote(text, safe="")
    if style == "plus":
        return quote_plus(text, safe="")
    # "raw": as little encoding as a query allows; requests percent-encodes the non-ASCII.
    return "".join(
        char if ord(char) > 127 or char in "~!$'()*,;:@/?" else quote(char, safe="")
        for char in text
    )


def _our_raw_query(case: Case, rng: random.Random) -> str:
    parts = []
    for key, value in rng.sample(case.pairs, len(case.pairs)):
        style = rng.choice(["quote", "plus", "raw"]) if case.spelling == "mixed" else case.spelling
        if key and value == "" and rng.random() < 0.5:
            parts.append(_spell(key, style))  # `k` with no '=' means the same as `k=`
        else:
            parts.append(f"{_spell(key, style)}={_spell(value, style)}")
        if rng.random() < 0.1:
            parts.append("")  # a stray '&&' carries nothing
    return "&".join(parts)


def _our_request(case: Case) -> requests.PreparedRequest:
    rng = random.Random(repr(case))
    headers = {"Accept": "application/json", "User-Agent": "cross-check", "TEST_UNDERSCORE": "x"}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    if case.project_id is not None:
        headers["X-Project-Id"] = case.project_id
    if case.custom is not None:
        headers["X-Custom-Header"] = case.custom
    url = f"{case.scheme}://{case.host}{case.path}"
    params: list[tuple[str, str]] | None = None
    if case.spelling == "params":
        params = list(case.pairs)
    elif case.pairs:
        url += "?" + _our_raw_query(case, rng)
    data: bytes | str = case.body.decode() if case.body_as_text else case.body
    request = requests.Request(case.method, url, headers=headers, params=params, data=data)
    auth = SdkHmacSha256Auth(case.ak, case.sk, case.token, clock=_fixed(case.now))
    return auth(request.prepare())


def _sdk_sign(
    *,
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
    project_id: str | None,
    token: str | None,
) -> SdkRequest:
    # As huaweicloudsdkcore's client does: build an SdkRequest, let the credentials add
    # X-Project-Id and X-Security-Token, and sign (X-Sdk-Date preset, so its clock is unused).
    request = SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        query_params=query,
        header_params=headers,
        body=body or None,
    )
    credentials = BasicCredentials(ak, sk, project_id).with_security_token(token)
    signed: SdkRequest = credentials.sign_request(request)
    return signed


def _sdk_request(case: Case) -> SdkRequest:
    headers = {"X-Sdk-Date": sdk_date(case.now), "TEST_UNDERSCORE": "x"}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    if case.custom is not None:
        headers["X-Custom-Header"] = case.custom
    request = _sdk_sign(
        method=case.method,
        host=case.host,
        path=case.path,
        query=list(case.pairs),
        headers=headers,
        body=case.body,
        ak=case.ak,
        sk=case.sk,
        project_id=case.project_id,
        token=case.token,
    )
    request.schema = case.scheme
    return request


CASES = _generate_cases(CROSS_CHECK_SEED, CROSS_CHECK_COUNT)


@pytest.mark.parametrize("case", CASES, ids=[f"case{i:03d}" for i in range(len(CASES))])
def test_authorization_matches_the_official_sdk(case: Case) -> None:
    ours = _our_request(case)
    sdk = _sdk_request(case)
    # Where the SDK's http client sends its request: through requests, as it does.
    sdk_url = requests.Request(case.method, sdk.url).prepare().url

    assert ours.headers["Authorization"] == sdk.header_params["Authorization"]
    assert ours.url == sdk_url
    assert _verify_prepared(ours, ak=case.ak, sk=case.sk) is None


def test_cross_check_corpus_covers_every_awkward_input() -> None:
    def count(predicate: Callable[[Case], bool]) -> int:
        return sum(1 for case in CASES if predicate(case))

    def keys_include(*names: str) -> Callable[[Case], bool]:
        return lambda c: set(names) <= {key for key, _ in c.pairs}

    features = {
        "repeated keys": count(lambda c: len({k for k, _ in c.pairs}) < len(c.pairs)),
        "non-ascii query": count(lambda c: any(not (k + v).isascii() for k, v in c.pairs)),
        "empty value": count(lambda c: any(v == "" for _, v in c.pairs)),
        "plus in value": count(lambda c: any("+" in v for _, v in c.pairs)),
        "space in value": count(lambda c: any(" " in v for _, v in c.pairs)),
        "tilde in query": count(lambda c: any("~" in k + v for k, v in c.pairs)),
        "keys '.' and '/'": count(keys_include("a.b", "a/b")),
        "keys ascii and not": count(keys_include("é", "~k")),
        "space in path": count(lambda c: "%20" in c.path),
        "unicode in path": count(lambda c: not "".join(c.segments).isascii()),
        "tilde in path": count(lambda c: "~" in c.path),
        "encoded slash in path": count(lambda c: "%2F" in c.path),
        "plus in path": count(lambda c: "%2B" in c.path),
        "json body": count(lambda c: c.body.isascii() and bool(c.body)),
        "unicode body": count(lambda c: not c.body.isascii()),
        "empty body": count(lambda c: not c.body),
        "text body": count(lambda c: c.body_as_text),
        "security token": count(lambda c: c.token is not None),
        "no security token": count(lambda c: c.token is None),
        "project id": count(lambda c: c.project_id is not None),
        "port in host": count(lambda c: ":" in c.host),
    }
    features.update(Counter(f"method {c.method}" for c in CASES))
    features.update(Counter(f"spelling {c.spelling}" for c in CASES))
    expected_kinds = {f"method {m}" for m in ("GET", "POST", "DELETE", "PUT")} | {
        f"spelling {s}" for s in ("params", "quote", "plus", "raw", "mixed")
    }

    assert expected_kinds <= features.keys()
    assert len(CASES) >= 200
    assert {name: n for name, n in features.items() if n < 5} == {}


def test_sdk_signer_in_use_is_the_hmac_sha256_one() -> None:
    # Guards the cross-check: it must compare against the SDK-HMAC-SHA256 signer, not another.
    assert Signer._ALGORITHM == SIGNING_ALGORITHM
