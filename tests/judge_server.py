"""An OpenAI-compatible chat-completions server on 127.0.0.1 for the judge tests; import as
`from judge_server import ...` (tests/ is on sys.path because its conftest.py lives there).

`JudgeServer(respond)` serves POST /v1/chat/completions in a thread; `respond(body, attempt)` returns the reply text,
or an `Answer` for anything else (an HTTP error, a delay, a body that is not a chat completion). `tiny_model()` is a
responder backed by a real model: the tiny preset (random init from configs), run through vlmtune's generation
path on CPU, as a self-hosted judge server would run a real one.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    content: str | None = ""
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)
    raw: bytes | None = None
    """A body sent as is (a malformed reply)."""


Responder = Callable[[dict, int], "str | Answer"]


class JudgeServer:
    """Records every request body; `attempts` counts requests per user prompt (retries included)."""

    def __init__(self, respond: Responder, model: str = "judge-test"):
        self.respond, self.model = respond, model
        self.bodies: list[dict] = []
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.bodies.append({**body, "authorization": self.headers.get("Authorization")})
                    prompt = body["messages"][-1]["content"]
                    server.attempts[prompt] += 1
                    attempt = server.attempts[prompt]
                answer = server.respond(body, attempt)
                answer = answer if isinstance(answer, Answer) else Answer(content=answer)
                time.sleep(answer.delay_s)
                payload = (
                    answer.raw
                    if answer.raw is not None
                    else json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "model": server.model,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": answer.content},
                                    "finish_reason": "stop",
                                }
                            ],
                        }
                        if answer.status == 200
                        else {"error": {"message": f"status {answer.status}"}}
                    ).encode()
                )
                try:
                    self.send_response(answer.status)
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> JudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def tiny_model(max_tokens: int = 12) -> Responder:
    """A responder that answers with the tiny preset's greedy (or sampled) generation, text only."""
    from vlmtune.eval.generation import generate, load_model
    from vlmtune.eval.items import Question

    built = load_model(None)
    lock = threading.Lock()

    def respond(body: dict, attempt: int) -> str:
        messages = body["messages"]
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        question = Question(
            messages[-1]["content"],
            None,
            system,
            min(body.get("max_tokens", max_tokens), max_tokens),
            float(body.get("temperature", 0.0)),
        )
        with lock:  # one model, one generate() at a time
            return generate(built, [question], max_tokens)[0]

    return respond
