"""A bounded HTTP session for one host: every exchange — sign-in rounds included — goes through ``BoundedSession``.

pypsrp builds a ``requests.Session`` whose adapters read each body whole (``response.content``) and let urllib3
decompress it, and its Negotiate/NTLM handler (``handle_401``) loops for as long as the host sends challenge
tokens, reading each 401 body on the way. ``BoundedSession.install`` wraps the session's adapters' ``send`` so that,
for every HTTP exchange, before requests or pypsrp look at the answer:

- the run's cancel event and the host's deadline are checked, and the socket timeouts are clamped to what is left
  of the exchange's wall time (its connect + read timeout, never past the host's deadline); past that time the
  watchdog shuts the exchange's socket down, even mid-headers;
- redirects and any ``Content-Encoding`` are refused unread (``Accept-Encoding: identity`` is what we ask for);
- the body is read undecoded, as it arrives, up to the byte limit and the wall time — then handed to requests as
  the response's content, so ``response.content``/``.text`` never read the socket again;
- consecutive 401 answers are counted: past the limit the sign-in is stopped (``SignInLoop``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import requests.adapters
import urllib3.exceptions

from orchestrator.transport import guard
from orchestrator.transport.errors import Cause, OperationTimeout, TransportError
from orchestrator.transport.watchdog import WATCHDOG

Timeout = float | tuple[float | None, float | None] | None


class StopRequested(TransportError):
    """The run is stopping (Ctrl-C) while a request was being signed in or read."""

    default_cause: Cause = "cancelled"


class BoundedSession:
    """The bounds of one host's HTTP traffic; ``install`` it on the session pypsrp built, ``begin`` each request."""

    def __init__(
        self,
        host: str,
        bounds: guard.Bounds,
        *,
        deadline: Callable[[], float],
        cancel: threading.Event,
        budget: float,
    ) -> None:
        self.host = host
        self.bounds = bounds
        self._deadline = deadline
        self._cancel = cancel
        self._budget = budget
        self.rounds = 0  # 401 answers in a row
        self.exchanges = 0
        self._conn: Any = None  # the urllib3 connection of the exchange in flight (for the watchdog)

    def begin(self) -> None:
        """A new WS-Man request starts: its sign-in rounds are counted afresh."""
        self.rounds = 0

    def install(self, session: requests.Session) -> None:
        session.headers["Accept-Encoding"] = "identity"
        for adapter in session.adapters.values():
            if not isinstance(adapter, requests.adapters.HTTPAdapter):  # pypsrp mounts HTTPAdapters only
                raise TypeError(f"cannot bound a {type(adapter).__name__}")
            if not getattr(adapter.send, "_kmsfleet_bounded", False):
                adapter.send = self._wrap(adapter.send)  # type: ignore[method-assign]
                pool_of = adapter.get_connection_with_tls_context
                adapter.get_connection_with_tls_context = self._track(pool_of)  # type: ignore[method-assign]

    # ------------------------------------------------------------------ per exchange

    def _wrap(self, original: Callable[..., requests.Response]) -> Callable[..., requests.Response]:
        def send(request: requests.PreparedRequest, stream: bool = False, timeout: Timeout = None, **kw: Any) -> Any:
            del stream  # always streamed: the body is read here, bounded
            until = self._exchange_until(timeout)
            started = time.monotonic()
            self._conn = None
            watch = WATCHDOG.watch(until, self._socket)
            try:
                response = original(request, stream=True, timeout=_clamp(timeout, until - started), **kw)
                try:
                    self._check_answer(response)
                    peer = _peer_socket(response)
                    body = self._read(response, until, started)
                    WATCHDOG.release(watch)  # from here on ``fired`` cannot change
                    if watch.fired:  # a body without a length ends at the shutdown: it is cut, not whole
                        raise requests.exceptions.ConnectionError("cut by the watchdog")
                except BaseException:
                    response.close()  # the connection is not reused: the rest of the answer stays unread
                    raise
            except requests.exceptions.RequestException:
                if watch.fired:  # the watchdog ended it: say so, not "connection dropped"
                    raise guard.slow_response(self.host, started) from None
                raise
            finally:
                WATCHDOG.release(watch)
            response._content = body
            response._content_consumed = True  # type: ignore[attr-defined]  # requests has it, its stubs not
            response.raw.release_conn()
            if peer is not None and getattr(response.raw._fp, "fp", None) is None:
                response.raw._fp = _PeerSocket(peer)
            return response

        send._kmsfleet_bounded = True  # type: ignore[attr-defined]
        return send

    def _track(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap the adapter's pool lookup so each pool tells us which connection an exchange got."""

        def get_pool(*args: Any, **kwargs: Any) -> Any:
            pool = original(*args, **kwargs)
            if not getattr(pool, "_kmsfleet_tracked", False):
                get_conn = pool._get_conn

                def tracked_get_conn(*a: Any, **k: Any) -> Any:
                    conn = get_conn(*a, **k)
                    self._conn = conn
                    return conn

                pool._get_conn = tracked_get_conn
                pool._kmsfleet_tracked = True
            return pool

        return get_pool

    def _socket(self) -> object | None:
        return getattr(self._conn, "sock", None)

    def _exchange_until(self, timeout: Timeout) -> float:
        """Check the cancel event and the deadline; the monotonic time this exchange must be over by."""
        until, _ = exchange_window(self.host, self._cancel, self._deadline(), self._budget, timeout)
        self.exchanges += 1
        return until

    def _check_answer(self, response: requests.Response) -> None:
        self.rounds = guard.check_head(
            self.host,
            response.status_code,
            response.headers.get("Content-Encoding"),
            response.headers.get("Content-Length"),
            self.bounds,
            self.rounds,
        )

    def _read(self, response: requests.Response, until: float, started: float) -> bytes:
        try:
            return guard.read_capped(self.host, response.raw, self.bounds.max_response_bytes, until, started)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(exc) from None
        except urllib3.exceptions.SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.exceptions.ConnectionError(exc) from None


def exchange_window(
    host: str, cancel: threading.Event, deadline: float, budget: float, timeout: Timeout
) -> tuple[float, float]:
    """Before an exchange (either sender): refused when the run is stopping or the host's budget ran out; else
    (the monotonic time the exchange must be over by, now)."""
    if cancel.is_set():
        raise StopRequested(host, "the run is stopping")
    now = time.monotonic()
    if now >= deadline:
        raise OperationTimeout(host, f"the host's time budget of {budget:.0f}s ran out", cause="budget")
    connect, read = _split(timeout)
    return min(deadline, now + connect + read), now


def _split(timeout: Timeout) -> tuple[float, float]:
    """(connect, read) seconds of a requests timeout; None counts as a minute each (pypsrp always sets one)."""
    if timeout is None:
        return 60.0, 60.0
    if isinstance(timeout, tuple):
        connect, read = timeout
        return float(connect if connect is not None else 60.0), float(read if read is not None else 60.0)
    return float(timeout), float(timeout)


def _clamp(timeout: Timeout, left: float) -> tuple[float, float]:
    """The socket timeouts, never longer than what is left of the exchange (at least a tenth of a second)."""
    connect, read = _split(timeout)
    left = max(0.1, left)
    return min(connect, left), min(read, left)


class _PeerSocket:
    """Where pypsrp's Negotiate handler looks for the TLS socket (``raw._fp.fp.raw._sock``) to bind the sign-in to
    the server's certificate (channel binding, RFC 5929). http.client drops that reference once a body is read
    whole — as it is here, before the handler runs — so the read-out http.client response under the urllib3 one is
    replaced by this stand-in: closed (the connection is back in urllib3's pool), holding only the socket."""

    def __init__(self, sock: object) -> None:
        self.fp = _Holder(_Holder(sock))

    def isclosed(self) -> bool:
        return True

    def close(self) -> None:
        return None


class _Holder:
    def __init__(self, inner: object) -> None:
        self.raw = inner
        self._sock = inner


def _peer_socket(response: requests.Response) -> object | None:
    fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
    return getattr(getattr(fp, "raw", None), "_sock", None)
