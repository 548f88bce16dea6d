"""The judge that scores open-ended answers: an OpenAI-compatible endpoint or a model served in the Ray job,
with a reply cache in the job's output so no request is paid for twice."""

from __future__ import annotations

import os

from vlmtune.eval.judge.cache import ReplyCache, cache_for
from vlmtune.eval.judge.endpoint import EndpointJudge
from vlmtune.eval.judge.local import ModelJudge
from vlmtune.eval.judge.requests import JudgeError, JudgeRequest, Reply
from vlmtune.eval.judge.review import Judge, ask_all, review_all
from vlmtune.spec import GenerationSpec, ResourcesSpec
from vlmtune.spec.eval import JudgeSpec

__all__ = [
    "EndpointJudge",
    "Judge",
    "JudgeError",
    "JudgeRequest",
    "ModelJudge",
    "Reply",
    "ReplyCache",
    "ask_all",
    "build_judge",
    "cache_for",
    "review_all",
]


def build_judge(
    spec: JudgeSpec, generation: GenerationSpec, resources: ResourcesSpec, show_progress: bool = False
) -> Judge:
    """The judge `spec` names. An endpoint's key comes from the environment variable it names (unset: no key)."""
    if spec.endpoint is not None:
        endpoint = spec.endpoint
        key = os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
        return EndpointJudge(
            endpoint.url,
            endpoint.model,
            key,
            requests_per_minute=spec.requests_per_minute,
            concurrency=spec.concurrency,
            max_retries=spec.max_retries,
            timeout_seconds=spec.timeout_seconds,
            key_env=endpoint.api_key_env,
        )
    model = spec.model
    return ModelJudge(model.pretrained, spec.identity(), generation, resources, model.max_new_tokens, show_progress)
