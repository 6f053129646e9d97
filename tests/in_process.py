"""The local endpoint without sockets: a `requests` adapter that hands each request to a
`FakeModelArts` in the calling thread, on a fake clock.

Everything but the socket is real: the transport's timeouts, retries and body reading, the
exceptions `requests` and urllib3 raise, the endpoint's state, faults and signature checks. Time
is a `FakeTime` that the endpoint's own waits move (latency, `slow` faults, bodies held back) and
so do the adapter's: a wait longer than the timeout the transport gave ends, as it would on a
socket, in `ConnectTimeout` (nothing sent), `ReadTimeout` (no answer yet) or urllib3's
`ReadTimeoutError` (a body stopped arriving). A request the client gave up on is still carried
out, as a real server would, which is the case the deadline tests are about.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from modelarts_cleanup.cloud.session import new_session
from modelarts_cleanup.testing import FakeModelArts
from tests.support import FakeTime

# Nothing listens there: should anything miss the adapter, it fails at once instead of hanging.
URL = "http://127.0.0.1:9"


class InProcessAdapter(BaseAdapter):
    """Serves requests from `fake` in the calling thread; waits are on `time_`.

    `connect_delays` maps an instance ID to how long connecting takes for its requests.
    """

    def __init__(
        self,
        fake: FakeModelArts,
        time_: FakeTime,
        connect_delays: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self._fake = fake
        self._time = time_
        self._connect_delays = dict(connect_delays or {})

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        connect, read = timeout
        path = request.path_url
        delay = next((d for i, d in self._connect_delays.items() if i in path), 0.0)
        if delay > connect:
            self._time.sleep(connect)
            raise requests.ConnectTimeout("connect timed out", request=request)
        self._time.sleep(delay)
        began = self._time()
        body = request.body or b""
        reply = self._fake.serve(
            str(request.method),
            path,
            dict(request.headers),
            body.encode() if isinstance(body, str) else body,
        )
        if self._time() - began > read:
            raise requests.ReadTimeout("read timed out", request=request)
        if reply is None:
            reset = ConnectionResetError(104, "Connection reset by peer")
            raise requests.ConnectionError(
                urllib3.exceptions.ProtocolError("Connection aborted.", reset), request=request
            )
        response = requests.Response()
        response.status_code = reply.status
        response.headers = CaseInsensitiveDict(
            {
                "Content-Type": reply.content_type,
                "Content-Length": str(len(reply.body)),
                **dict(reply.headers),
            }
        )
        response.raw = _Body(reply.paced(), len(reply.body), read, self._time)
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


class _Body:
    """A response body arriving piece by piece, as `raw` for the transport's reads."""

    def __init__(
        self, pieces: list[tuple[float, bytes]], length: int, read: float, time_: FakeTime
    ) -> None:
        self._pieces = deque(pieces)
        self._read = read
        self._time = time_
        self.length_remaining = length

    def read1(self, amt: int = -1, decode_content: bool = True) -> bytes:
        if not self._pieces:
            return b""
        pause, piece = self._pieces.popleft()
        if pause > self._read:
            self._time.sleep(self._read)
            raise urllib3.exceptions.ReadTimeoutError(None, "", "Read timed out.")
        self._time.sleep(pause)
        self.length_remaining -= len(piece)
        return piece

    def close(self) -> None:
        self._pieces.clear()

    def release_conn(self) -> None:
        pass


def session_factory(
    adapter: InProcessAdapter,
) -> Callable[[int, requests.auth.AuthBase], requests.Session]:
    """A `run_function` session factory whose sessions go through `adapter`."""

    def make(pool_size: int, auth: requests.auth.AuthBase) -> requests.Session:
        session = new_session(pool_size, auth=auth)
        session.mount("http://", adapter)
        return session

    return make
