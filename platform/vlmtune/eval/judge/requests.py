"""What is sent to a judge and what comes back, and the errors a judge can end in."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class JudgeRequest:
    """One chat-completions request: an optional system message, one user message, decoding settings."""

    user: str
    system: str | None = None
    temperature: float = 0.0
    max_tokens: int = 1024

    def key(self, judge: str) -> str:
        """The cache key: a hash of the judge's identity and everything sent."""
        text = json.dumps({"judge": judge, **asdict(self)}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def messages(self) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system is not None else []
        return [*system, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class Reply:
    """A judge's raw reply text and the model that wrote it (as the API named it)."""

    text: str
    model: str


class JudgeError(RuntimeError):
    """A judge that cannot answer: a permanent HTTP error, retries used up, or a reply that is not an answer.

    One line, naming the judge and what to do. Replies received before it are in the cache, so a rerun resumes.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __reduce__(self):
        return (JudgeError, (self.message,))
