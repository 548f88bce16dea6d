"""A judge model served inside the Ray job, through the same batched generation path as the evaluated model.

Its prompts are text-only questions (no image tokens, no pixels) with the request's system message as the chat
template's system prompt; temperatures above 0 sample (seeded). Replies are cached chunk by chunk, so a killed job
redoes at most one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vlmtune.eval.items import Question
from vlmtune.eval.judge.requests import JudgeRequest, Reply
from vlmtune.spec import GenerationSpec, ResourcesSpec

CHUNK = 256


class ModelJudge:
    """Asks a model loaded by Ray Data actors (`predict`), `CHUNK` requests per round trip."""

    def __init__(
        self,
        model_uri: str | None,
        identity: str,
        generation: GenerationSpec,
        resources: ResourcesSpec,
        max_new_tokens: int | None = None,
        show_progress: bool = False,
    ):
        self.model_uri, self.identity = model_uri, identity
        self.generation, self.resources = generation, resources
        self.max_new_tokens, self.show_progress = max_new_tokens, show_progress

    def question(self, request: JudgeRequest) -> Question:
        tokens = min(request.max_tokens, self.max_new_tokens or request.max_tokens)
        return Question(request.user, None, request.system, tokens, request.temperature)

    def complete(self, requests: Sequence[JudgeRequest], on_reply: Callable[[int, Reply], None]) -> None:
        from vlmtune.eval.predict import predict

        name = self.model_uri or self.identity
        for start in range(0, len(requests), CHUNK):
            chunk = requests[start : start + CHUNK]
            answers = predict(
                [self.question(request) for request in chunk],
                self.model_uri,
                self.generation,
                self.resources,
                self.show_progress,
            )
            for offset, answer in enumerate(answers):
                on_reply(start + offset, Reply(answer, name))
