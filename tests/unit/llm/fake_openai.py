"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions API, with scripted faults.

``faults`` is consumed one per request in arrival order before answering normally:
``("status", code, headers, body)``, ``("sleep", seconds)`` (then answer), ``("close",)``.
``respond(prompt) -> str`` picks the answer text; ``refuse(prompt)`` may return a
``("status", ...)`` fault for that prompt (every time it is sent); ``logprobs`` (token →
probability) is sent back as first-token top logprobs when the client asks for them.
"""

from __future__ import annotations

import json
import math
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
        self.refuse: Callable[[str], tuple | None] = lambda prompt: None
        self.logprobs: dict[str, float] = {"Yes": 0.7, "No": 0.2, "Maybe": 0.1}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "headers": {k.lower(): v for k, v in self.headers.items()}})
                    fault = fake.faults.popleft() if fake.faults else fake.refuse(body["messages"][-1]["content"])
                if fault and fault[0] == "status":
                    _, code, headers, payload = fault
                    return self._send(code, payload, headers)
                if fault and fault[0] == "sleep":
                    time.sleep(fault[1])
                prompt = body["messages"][-1]["content"]
                self._send(200, fake.completion(body, fake.respond(prompt)))

            def _send(self, code: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
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

    def completion(self, body: dict, text: str) -> dict:
        prompt_tokens = len(body["messages"][-1]["content"].split())
        choice = {"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": text}}
        if body.get("logprobs"):
            top = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in self.logprobs.items()]
            choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": body["model"], "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1,
                          "total_tokens": prompt_tokens + 1}}

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def error(code: int, message: str = "fault", headers: dict | None = None) -> tuple:
    return ("status", code, headers or {}, {"error": {"message": message, "type": "fault", "code": None}})
