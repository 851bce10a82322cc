"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions API, with scripted faults.

``faults`` is consumed one per request in arrival order before answering normally:

- ``("status", code, headers, body)``: that status, headers and JSON body (see ``error``);
- ``("sleep", seconds)``: wait, then answer normally;
- ``("close",)``: close the connection without answering;
- ``("hang", seconds)``: read the request, send nothing for ``seconds``, then close;
- ``("garbage",)``: 200 with a body that is not JSON;
- ``("empty",)``: 200 with an empty body;
- ``("truncated",)``: 200 with a normal completion's JSON cut in half (Content-Length matching);
- ``("text", content)``: a well-formed completion whose content is ``content`` (nonsense, say),
  its first-token logprobs naming neither Yes nor No.

``respond(prompt) -> str`` picks the answer text (a request with vLLM's ``guided_choice`` gets
it only if it is one of the choices, else the first choice; ``sampled(prompt, seed)``, when set,
answers a request with a seed: one of k samples); ``refuse(prompt)`` may return any fault for
that prompt (every time it is sent); ``logprobs`` (token → probability) is sent back as
first-token top logprobs when the client asks for them; ``cached_tokens`` are reported as read
from the prompt cache. Each entry of ``requests`` records the
fault it was served (``None``: answered normally).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TEST_KEY = "sk-test-DoNotLeak-0123456789abcdef"


class FakeOpenAI:
    def __init__(self):
        self.faults: deque = deque()
        self.respond: Callable[[str], str] = lambda prompt: "Yes"
        self.sampled: Callable[[str, int], str] | None = None  # (prompt, seed) for sampled requests
        self.refuse: Callable[[str], tuple | None] = lambda prompt: None
        self.logprobs: dict[str, float] = {"Yes": 0.7, "No": 0.2, "Maybe": 0.1}
        self.cached_tokens = 0  # reported as read from OpenAI's automatic prompt cache
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                entry = {"path": self.path, "body": body,
                         "headers": {k.lower(): v for k, v in self.headers.items()}}
                with fake.lock:
                    fake.requests.append(entry)
                    fault = fake.faults.popleft() if fake.faults else fake.refuse(prompt)
                    entry["fault"] = fault
                kind = fault[0] if fault else None
                if kind == "status":
                    _, code, headers, payload = fault
                    return self._send(code, payload, headers)
                if kind in ("close", "hang"):
                    if kind == "hang":
                        time.sleep(fault[1])
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return None
                if kind == "garbage":
                    return self._send(200, b"<html>\x00\xff not JSON at all {{{")
                if kind == "empty":
                    return self._send(200, b"")
                if kind == "truncated":
                    data = json.dumps(fake.completion(body, fake.respond(prompt))).encode()
                    return self._send(200, data[: len(data) // 2])
                if kind == "text":
                    return self._send(200, fake.completion(body, fault[1], logprobs={"Ban": 0.6, "The": 0.4}))
                if kind == "sleep":
                    time.sleep(fault[1])
                sampled = fake.sampled is not None and "seed" in body
                answer = fake.sampled(prompt, body["seed"]) if sampled else fake.respond(prompt)
                allowed = body.get("guided_choice")
                self._send(200, fake.completion(body, answer if not allowed or answer in allowed else allowed[0]))

            def _send(self, code: int, payload: dict | bytes, headers: dict | None = None):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def completion(self, body: dict, text: str, logprobs: dict[str, float] | None = None) -> dict:
        prompt_tokens = len(body["messages"][-1]["content"].split())
        choice = {"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": text}}
        if body.get("logprobs"):
            top = [{"token": t, "logprob": math.log(p), "bytes": None}
                   for t, p in (logprobs or self.logprobs).items()]
            choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": body["model"], "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1,
                          "total_tokens": prompt_tokens + 1,
                          "prompt_tokens_details": {"cached_tokens": min(self.cached_tokens, prompt_tokens)}}}

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def error(code: int, message: str = "fault", headers: dict | None = None) -> tuple:
    return ("status", code, headers or {}, {"error": {"message": message, "type": "fault", "code": None}})


def rate_limited(**headers: str) -> tuple:
    """A 429 with these headers, ``_`` in a name written ``-``: ``rate_limited(retry_after_ms="250")``."""
    return error(429, "rate limited", {name.replace("_", "-"): value for name, value in headers.items()})
