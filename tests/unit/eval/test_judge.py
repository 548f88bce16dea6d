"""The judge: an OpenAI-compatible endpoint on 127.0.0.1 (scripted, and one serving a real tiny model), retries,
backoff, rate limiting, the reply cache (a rerun pays nothing; a killed run loses only what was in flight)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from judge_server import Answer, JudgeServer, tiny_model
from vlmtune.eval import llavabench, mmvet
from vlmtune.eval.items import Item
from vlmtune.eval.judge import EndpointJudge, JudgeError, JudgeRequest, ReplyCache, ask_all, review_all
from vlmtune.eval.judge.cache import LOCAL_FILE
from vlmtune.eval.judge.endpoint import RateLimiter, backoff
from vlmtune.eval.reviews import review_records

pytestmark = pytest.mark.timeout(120)


def _judge(server: JudgeServer, **options) -> tuple[EndpointJudge, list[float]]:
    """A judge whose backoff sleeps are recorded, not slept (the rate limit is set out of the way)."""
    slept: list[float] = []
    settings = {"requests_per_minute": 1e9, "concurrency": 2, "max_retries": 3, "timeout_seconds": 5.0} | options
    return EndpointJudge(
        server.url, "gpt-4-0613", "sk-test", sleep=slept.append, key_env="OPENAI_API_KEY", **settings
    ), slept


def _ask(judge, requests):
    replies = {}
    judge.complete(requests, lambda index, reply: replies.__setitem__(index, reply))
    return [replies[index] for index in range(len(requests))]


def test_rate_limiter_spaces_request_starts():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # 0.5 s apart
    for _ in range(4):
        limiter.wait()
    assert slept == [0.5, 0.5, 0.5]


def test_backoff_doubles_with_jitter_caps_and_honours_retry_after():
    rng = random.Random(0)
    for attempt, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8)]):
        assert low <= backoff(attempt, None, rng) <= high
    assert 30 <= backoff(20, None, rng) <= 60
    assert backoff(0, 7.0, rng) == 7.0 and backoff(0, 1e6, rng) == 120.0


def test_a_request_as_openai_expects_it_and_the_reply_text():
    with JudgeServer(lambda body, attempt: "8 6\nBoth fine.") as server:
        judge, _ = _judge(server)
        (reply,) = _ask(judge, [JudgeRequest("compare these", system="be precise", temperature=0.2, max_tokens=1024)])
    assert (reply.text, reply.model) == ("8 6\nBoth fine.", "judge-test")
    (body,) = server.bodies
    assert body["model"] == "gpt-4-0613" and body["authorization"] == "Bearer sk-test"
    assert body["messages"] == [
        {"role": "system", "content": "be precise"},
        {"role": "user", "content": "compare these"},
    ]
    assert (body["temperature"], body["max_tokens"]) == (0.2, 1024)


@pytest.mark.parametrize(
    "failure",
    [
        Answer(429, headers={"Retry-After": "3"}),
        Answer(500),
        Answer(503),
        Answer(raw=b"<html>oops</html>"),
        Answer(raw=b'{"choices": []}'),
        Answer(raw=b'{"choices": [{"message": {"content": 5}}]}'),
    ],
)
def test_transient_failures_are_retried_with_backoff(failure):
    with JudgeServer(lambda body, attempt: failure if attempt <= 2 else "0.5") as server:
        judge, slept = _judge(server)
        (reply,) = _ask(judge, [JudgeRequest("grade it")])
    assert reply.text == "0.5" and server.attempts["grade it"] == 3
    assert len(slept) == 2
    if failure.headers:
        assert slept == [3.0, 3.0]  # the server's Retry-After, not our own backoff


def test_a_timeout_is_retried():
    with JudgeServer(lambda body, attempt: Answer(content="0.9", delay_s=2.0 if attempt == 1 else 0)) as server:
        judge, slept = _judge(server, timeout_seconds=0.4)
        started = time.monotonic()
        (reply,) = _ask(judge, [JudgeRequest("slow")])
    assert reply.text == "0.9" and server.attempts["slow"] == 2 and time.monotonic() - started < 10


def test_permanent_errors_stop_at_once_with_one_line():
    with JudgeServer(lambda body, attempt: Answer(401)) as server:
        judge, _ = _judge(server)
        with pytest.raises(JudgeError) as caught:
            _ask(judge, [JudgeRequest("x")])
    message = str(caught.value)
    assert "HTTP 401" in message and "$OPENAI_API_KEY" in message and "\n" not in message
    assert server.attempts["x"] == 1


def test_retries_run_out_with_a_message_that_says_how_to_resume():
    with JudgeServer(lambda body, attempt: Answer(503)) as server:
        judge, slept = _judge(server, max_retries=2)
        with pytest.raises(JudgeError, match=r"HTTP 503 after 3 attempt\(s\).*rerun to resume"):
            _ask(judge, [JudgeRequest("x")])
    assert server.attempts["x"] == 3 and len(slept) == 2


def test_a_null_content_is_an_empty_reply():
    with JudgeServer(lambda body, attempt: Answer(content=None)) as server:
        judge, _ = _judge(server)
        assert _ask(judge, [JudgeRequest("filtered")])[0].text == ""


def test_the_rate_limit_holds_against_a_real_server():
    with JudgeServer(lambda body, attempt: "1.0") as server:
        judge = EndpointJudge(server.url, "m", None, requests_per_minute=600, concurrency=4)  # 0.1 s apart
        started = time.monotonic()
        _ask(judge, [JudgeRequest(f"q{n}") for n in range(6)])
    assert time.monotonic() - started >= 0.5 and server.bodies[0]["authorization"] is None  # no key: no header


def test_the_cache_answers_a_rerun_and_skips_a_line_cut_short(tmp_path):
    requests = [JudgeRequest(f"q{n}") for n in range(4)] + [JudgeRequest("q0")]  # a duplicate: asked once
    with JudgeServer(lambda body, attempt: body["messages"][-1]["content"].upper()) as server:
        judge, _ = _judge(server)
        replies, sent, cached = ask_all(judge, requests, ReplyCache(str(tmp_path / "judge")))
        assert [r.text for r in replies] == ["Q0", "Q1", "Q2", "Q3", "Q0"] and (sent, cached) == (4, 0)
        with open(tmp_path / "judge" / LOCAL_FILE, "a") as handle:
            handle.write('{"key": "abc", "rep')  # what a kill in the middle of a write leaves
        cache = ReplyCache(str(tmp_path / "judge"))
        assert cache.damaged_lines == 1 and len(cache.replies) == 4
        again, sent, cached = ask_all(judge, requests, cache)
        assert [r.text for r in again] == [r.text for r in replies] and (sent, cached) == (0, 5)
        assert len(server.bodies) == 4
        # Another judge is another cache entry: the same prompt is asked again.
        other = EndpointJudge(server.url, "another-model", None, requests_per_minute=60_000)
        assert ask_all(other, requests[:1], cache)[1:] == (1, 0)


def _llava_item(n: int) -> Item:
    return Item(str(n), f"Q{n}", f"Q{n}", b"", f"reference {n}", "conv", extra={"context": "a caption"})


def test_review_rounds_llava_bench_once_mm_vet_until_a_grade_parses(tmp_path):
    graded = []

    def respond(body, attempt):
        user = body["messages"][-1]["content"]
        if user.startswith("[Context]"):
            return {"Q0": "8 6\nfine", "Q1": "I cannot score this.", "Q2": "9 9"}[user.split("\n")[4]]
        graded.append(user)
        return "Correct" if len(graded) < 3 else "0.7"  # MM-Vet: two replies that do not parse, then a grade

    items = [_llava_item(n) for n in range(3)]
    vet = [Item("v1_0", "What?", "What?", b"", "42", "math", extra={"capabilities": ["math"]})]
    with JudgeServer(respond) as server:
        judge, _ = _judge(server)
        cache = ReplyCache(str(tmp_path / "judge"))
        reviews, sent, _ = review_all(llavabench.next_request, items, ["a", "b", None], judge, cache)
        assert sent == 3 and [len(r) for r in reviews] == [1, 1, 1]
        result = llavabench.score_items(items, ["a", "b", None], reviews)
        assert result["unparsable"] == 1 and result["relative"] == pytest.approx(15 / 17)
        records = review_records("llavabench", items, ["a", "b", None], reviews)
        assert records[1]["replies"] == ["I cannot score this."] and records[1]["scores"] is None  # raw reply kept
        vet_reviews, sent, _ = review_all(mmvet.next_request, vet, ["It is 42"], judge, cache)
        assert sent == 3 and vet_reviews == [["Correct", "Correct", "0.7"]]
        assert [b["temperature"] for b in server.bodies[3:]] == [0.0, 0.0, 0.5]
        assert mmvet.score_items(vet, ["It is 42"], vet_reviews)["total"] == 0.7
        # A rerun asks nothing: every round is answered from the cache.
        rerun = review_all(mmvet.next_request, vet, ["It is 42"], judge, ReplyCache(str(tmp_path / "judge")))
        assert rerun[1:] == (0, 3)


def test_an_endpoint_serving_a_real_tiny_model(tmp_path):
    items = [_llava_item(n) for n in range(3)]
    with JudgeServer(tiny_model(max_tokens=8), model="vlmtune-tiny") as server:
        judge, _ = _judge(server, concurrency=3)
        reviews, sent, _ = review_all(
            llavabench.next_request, items, ["one", "two", "three"], judge, ReplyCache(str(tmp_path / "judge"))
        )
    assert sent == 3 and all(len(replies) == 1 and replies[0] for replies in reviews)  # the model said something
    result = llavabench.score_items(items, ["one", "two", "three"], reviews)
    # A random-init model cannot grade: its replies are kept, counted as unparsable, and no figure is made up.
    assert result["unparsable"] == 3 and result["relative"] is None
    lines = (tmp_path / "judge" / LOCAL_FILE).read_text().splitlines()
    assert {json.loads(line)["model"] for line in lines} == {"vlmtune-tiny"}


KILLED_RUN = """
import sys
from vlmtune.eval.judge import EndpointJudge, JudgeRequest, ReplyCache, ask_all
judge = EndpointJudge(sys.argv[1], "m", None, requests_per_minute=60000, concurrency=1)
ask_all(judge, [JudgeRequest(f"q{n}") for n in range(12)], ReplyCache(sys.argv[2]))
"""


def test_the_cache_survives_a_kill(tmp_path):
    folder = tmp_path / "judge"
    with JudgeServer(
        lambda body, attempt: Answer(content="ok " + body["messages"][-1]["content"], delay_s=0.2)
    ) as server:
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, server.url, str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (folder / LOCAL_FILE).exists() and len((folder / LOCAL_FILE).read_text().splitlines()) >= 4:
                break
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        kept = [json.loads(line) for line in (folder / LOCAL_FILE).read_text().splitlines()]
        assert 4 <= len(kept) < 12, "the run was killed before it finished"
        paid_before = len(server.bodies)
        judge = EndpointJudge(server.url, "m", None, requests_per_minute=60_000, concurrency=1)
        replies, sent, cached = ask_all(judge, [JudgeRequest(f"q{n}") for n in range(12)], ReplyCache(str(folder)))
    assert [r.text for r in replies] == [f"ok q{n}" for n in range(12)]
    assert (sent, cached) == (12 - len(kept), len(kept))  # a reply that reached the disk is never paid for again
    asked_again = {body["messages"][-1]["content"] for body in server.bodies[paid_before:]}
    assert not asked_again & {record["request"]["user"] for record in kept}
