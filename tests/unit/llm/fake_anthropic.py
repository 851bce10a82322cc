"""A real HTTP server on 127.0.0.1 speaking Anthropic's Messages API (``POST /v1/messages``),
with its prompt cache: a text block marked ``cache_control`` caches everything up to and
including it; a later request starting with the same cached text reads it. Tokens are words.
``requests`` records each request body; ``respond(prompt)`` picks the answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeAnthropic:
    def __init__(self):
        self.respond: Callable[[str], str] = lambda prompt: "Yes"
        self.requests: list[dict] = []
        self.cached: set[str] = set()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    answer = fake.answer(body)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, body: dict) -> dict:
        content = body["messages"][-1]["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        marked = max((i for i, b in enumerate(blocks) if b.get("cache_control")), default=-1)
        prefix = "".join(b["text"] for b in blocks[:marked + 1])
        rest = "".join(b["text"] for b in blocks[marked + 1:])
        usage = {"input_tokens": len(rest.split()), "output_tokens": 1,
                 "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        if prefix:  # Anthropic's input_tokens leaves out the cached part
            usage["cache_read_input_tokens" if prefix in self.cached else "cache_creation_input_tokens"] = \
                len(prefix.split())
            self.cached.add(prefix)
        return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": self.respond(prefix + rest)}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": usage}

    def __enter__(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
