"""Judging a benchmark's answers: rounds of requests, each answered from the cache or by the judge.

A judged benchmark says, for one question, what to ask next given the replies so far (`next_request`), or None
when it has what it needs: LLaVA-Bench asks once; MM-Vet asks again while the grade does not parse, at rising
temperature, as its official grader does. Rounds repeat until no question asks for more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from vlmtune.eval.items import Item
from vlmtune.eval.judge.cache import ReplyCache
from vlmtune.eval.judge.requests import JudgeRequest, Reply

NextRequest = Callable[[Item, "str | None", Sequence[str]], "JudgeRequest | None"]
MAX_ROUNDS = 16


class Judge(Protocol):
    identity: str

    def complete(self, requests: Sequence[JudgeRequest], on_reply: Callable[[int, Reply], None]) -> None: ...


def ask_all(judge: Judge, requests: Sequence[JudgeRequest], cache: ReplyCache) -> tuple[list[Reply], int, int]:
    """Replies to `requests` in order, how many requests the judge was sent, and how many came from the cache
    (the same request twice in one call is sent once).

    A request seen before (same text, settings and judge) is never sent again, whether it was answered in this run,
    an earlier run, or a run that was killed.
    """
    keys = [request.key(judge.identity) for request in requests]
    replies: list[Reply | None] = [cache.get(key) for key in keys]
    missing: dict[str, list[int]] = {}
    for index, reply in enumerate(replies):
        if reply is None:
            missing.setdefault(keys[index], []).append(index)
    unique = [indices[0] for indices in missing.values()]
    cached = len(requests) - sum(len(indices) for indices in missing.values())

    def received(position: int, reply: Reply) -> None:
        index = unique[position]
        cache.put(keys[index], judge.identity, requests[index], reply)
        for same in missing[keys[index]]:
            replies[same] = reply

    try:
        judge.complete([requests[index] for index in unique], received)
    finally:
        cache.flush()
    return [reply for reply in replies if reply is not None], len(unique), cached


def review_all(
    next_request: NextRequest, items: Sequence[Item], predictions: Sequence[str | None], judge: Judge, cache: ReplyCache
) -> tuple[list[list[str]], int, int]:
    """Every question's judge replies in the order asked, the number of requests sent, and the number of replies
    that came from the cache.

    Raises:
        JudgeError: the judge failed for good (what was received is cached).
        RuntimeError: a benchmark that keeps asking past `MAX_ROUNDS` (a bug in its `next_request`).
    """
    reviews: list[list[str]] = [[] for _ in items]
    sent = cached = 0
    for _ in range(MAX_ROUNDS):
        asking = [
            (index, request)
            for index, (item, prediction) in enumerate(zip(items, predictions, strict=True))
            if (request := next_request(item, prediction, reviews[index])) is not None
        ]
        if not asking:
            return reviews, sent, cached
        replies, asked, hits = ask_all(judge, [request for _, request in asking], cache)
        sent, cached = sent + asked, cached + hits
        for (index, _), reply in zip(asking, replies, strict=True):
            reviews[index].append(reply.text)
    raise RuntimeError(f"judging did not settle after {MAX_ROUNDS} rounds")
