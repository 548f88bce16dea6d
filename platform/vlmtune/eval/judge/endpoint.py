"""A judge behind an OpenAI-compatible chat-completions API (OpenAI, or vLLM/TGI/llama.cpp on the cluster).

Requests run `concurrency` at a time, their starts spaced to `requestsPerMinute`; a timeout, a dropped connection,
HTTP 408/409/429/5xx or a reply that is not a chat completion is retried with exponential backoff (honouring
`Retry-After`), up to `maxRetries` times. Other HTTP errors (a wrong key, an unknown model) stop at once with one
line saying what to fix. Plain `urllib`: no client library to install or pin.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

from vlmtune.eval.judge.requests import JudgeError, JudgeRequest, Reply

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_BASE_S, BACKOFF_CAP_S, RETRY_AFTER_CAP_S = 1.0, 60.0, 120.0


@dataclass(frozen=True)
class Transient(Exception):
    """A failure worth retrying, and how long the server asked us to wait (None: our own backoff)."""

    reason: str
    retry_after: float | None = None


class RateLimiter:
    """Spaces request starts at least `60 / per_minute` seconds apart, across threads."""

    def __init__(
        self,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 60.0 / per_minute
        self.clock, self.sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.sleep(start - now)


def backoff(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before retry `attempt` (0-based): the server's Retry-After when given (capped), else 1, 2, 4 ... s
    (capped at 60 s) with up to half of it taken off at random, so clients that failed together spread out."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_S)
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
    return delay * (0.5 + 0.5 * rng.random())


def post_json(url: str, body: dict, headers: dict[str, str], timeout: float) -> dict:
    """POST `body` as JSON and return the JSON reply.

    Raises:
        Transient: timeouts, connection failures, retryable statuses, replies that are not JSON.
        JudgeError: any other HTTP status.
    """
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read()
    except urllib.error.HTTPError as err:
        detail = _snippet(err.read())
        if err.code in RETRYABLE_STATUS:
            raise Transient(f"HTTP {err.code}", _seconds(err.headers.get("Retry-After"))) from None
        raise JudgeError(f"judge {url}: HTTP {err.code} {err.reason}{detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise Transient(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from None
    try:
        return json.loads(data)
    except ValueError:
        raise Transient(f"not JSON: {_snippet(data)}") from None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _snippet(data: bytes) -> str:
    text = " ".join(data.decode("utf-8", errors="replace").split())
    return f": {text[:160]}" if text else ""


class EndpointJudge:
    """Asks an OpenAI-compatible endpoint; see the module docstring for the retry and rate rules."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None,
        *,
        requests_per_minute: float = 60.0,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout_seconds: float = 120.0,
        transport: Callable[..., dict] = post_json,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
        key_env: str | None = None,
    ):
        self.url = url.rstrip("/") + "/chat/completions"
        self.key_env = key_env
        self.model, self.api_key = model, api_key
        self.identity = f"endpoint:{url.rstrip('/')}#{model}"
        self.concurrency, self.max_retries, self.timeout = concurrency, max_retries, timeout_seconds
        self.transport, self.sleep = transport, sleep
        self.limiter = RateLimiter(requests_per_minute, clock, sleep)
        self._rng = random.Random(seed)

    def complete(self, requests: Sequence[JudgeRequest], on_reply: Callable[[int, Reply], None]) -> None:
        """Ask every request; `on_reply(index, reply)` is called as each reply arrives (in any order).

        Raises:
            JudgeError: a request failed for good; the others in flight are cancelled.
        """
        if not requests:
            return
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge") as pool:
            futures = {pool.submit(self.ask, request): index for index, request in enumerate(requests)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)  # cache each reply at once
                for future in done:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()
                    on_reply(futures[future], future.result())

    def ask(self, request: JudgeRequest) -> Reply:
        """One request, retried as the module docstring says.

        Raises:
            JudgeError: a permanent error, or retries used up.
        """
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {
            "model": self.model,
            "messages": request.messages(),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            try:
                return _reply(self.transport(self.url, body, headers, self.timeout), self.model)
            except JudgeError as error:
                if " HTTP 401 " in error.message or " HTTP 403 " in error.message:
                    where = f"${self.key_env}" if self.key_env else "spec.judge.endpoint.apiKeyEnv"
                    raise JudgeError(
                        f"{error.message}; check the API key in {where} ({'set' if self.api_key else 'not set'} here)"
                    ) from None
                raise
            except Transient as failure:
                if attempt == self.max_retries:
                    raise JudgeError(
                        f"judge {self.url}: {failure.reason} after {attempt + 1} attempt(s); "
                        "raise spec.judge.maxRetries or timeoutSeconds, or check the server "
                        "(replies so far are cached: rerun to resume)"
                    ) from None
                self.sleep(backoff(attempt, failure.retry_after, self._rng))
        raise AssertionError("unreachable")


def _reply(document: dict, model: str) -> Reply:
    """The first choice's message text; a missing or non-text message is retried as malformed.

    A `null` content (e.g. a content filter) is an answer all the same: an empty reply, which will not parse.
    """
    try:
        message = document["choices"][0]["message"]
        content = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise Transient(f"not a chat completion: {_snippet(json.dumps(document).encode())}") from None
    if content is not None and not isinstance(content, str):
        raise Transient(f"message content is {type(content).__name__}, not text")
    return Reply(content or "", str(document.get("model") or model))
