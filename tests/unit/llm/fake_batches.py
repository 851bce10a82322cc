"""A real HTTP server on 127.0.0.1 speaking the batch APIs of OpenAI (``/v1/files``,
``/v1/batches``, the output file's content) and Anthropic (``/v1/messages/batches``, its results).

A batch stays in progress while ``hold`` is set, then for ``polls_before_done`` more polls, then
finishes: completed, or as ``outcome`` says, read when it finishes: ``("expired", reason)``
(OpenAI: status expired, no output; Anthropic: every result expired) or ``("failed", reason)``
(OpenAI: status failed; Anthropic: every result errored with ``reason``). While ``reject`` is
set, a batch submitted is refused with HTTP 400 and that message. ``respond(prompt)``
picks each answer. ``created`` records each batch submitted (provider, id, requests), ``polls``
the id of every poll, ``live`` every request to a live endpoint (none should come in batch mode).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeBatches:
    def __init__(self):
        self.respond: Callable[[str], str] = lambda prompt: "Yes"
        self.hold = False
        self.polls_before_done = 1
        self.outcome: tuple[str, str] | None = None
        self.reject: str | None = None
        self.created: list[dict] = []
        self.polls: list[str] = []
        self.live: list[str] = []
        self.lock = threading.Lock()
        self._files: dict[str, bytes] = {}
        self._batches: dict[str, dict] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake.lock:
                    if fake.reject and self.path in ("/v1/batches", "/v1/messages/batches"):
                        return self._send({"type": "error", "error": {
                            "type": "invalid_request_error", "message": fake.reject}}, 400)
                    if self.path == "/v1/files":
                        return self._send(fake._upload(body))
                    if self.path == "/v1/batches":
                        return self._send(fake._create_openai(json.loads(body)))
                    if self.path == "/v1/messages/batches":
                        return self._send(fake._create_anthropic(json.loads(body)))
                    fake.live.append(self.path)
                self._send({"error": {"message": f"no live calls here: {self.path}", "type": "fault"}}, 404)

            def do_GET(self):
                with fake.lock:
                    if match := re.fullmatch(r"/v1/files/([\w-]+)/content", self.path):
                        return self._send(fake._files[match.group(1)])
                    if match := re.fullmatch(r"/v1/messages/batches/([\w-]+)/results", self.path):
                        return self._send(fake._batches[match.group(1)]["results"])
                    if match := re.fullmatch(r"/v1(/messages)?/batches/([\w-]+)", self.path):
                        return self._send(fake._poll(match.group(2)))
                self._send({"error": {"message": f"unknown path {self.path}"}}, 404)

            def _send(self, payload: dict | bytes, code: int = 200):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        """OpenAI's base URL (Anthropic's is ``root``)."""
        return f"{self.root}/v1"

    def finished(self) -> list[str]:
        with self.lock:
            return [i for i, b in self._batches.items() if b["state"] == "done"]

    # ------------------------------------------------------------ the provider's side

    def _upload(self, body: bytes) -> dict:
        """A multipart upload: the JSONL lines are the ones that parse as requests."""
        file_id = f"file-{len(self._files)}"
        lines = [line for line in body.decode().splitlines() if line.startswith('{"custom_id"')]
        self._files[file_id] = "\n".join(lines).encode()
        return {"id": file_id, "object": "file", "bytes": len(body), "created_at": 0,
                "filename": "requests.jsonl", "purpose": "batch", "status": "processed"}

    def _new(self, provider: str, requests: list[tuple[str, dict]]) -> dict:
        batch_id = f"{'batch' if provider == 'openai' else 'msgbatch'}_{len(self._batches)}"
        batch = {"id": batch_id, "provider": provider, "requests": requests, "state": "running", "polls": 0,
                 "results": b"", "output": None, "error": None}
        self._batches[batch_id] = batch
        self.created.append({"provider": provider, "id": batch_id, "custom_ids": [c for c, _ in requests]})
        return batch

    def _create_openai(self, body: dict) -> dict:
        lines = [json.loads(line) for line in self._files[body["input_file_id"]].decode().splitlines()]
        return self._openai_view(self._new("openai", [(line["custom_id"], line["body"]) for line in lines]))

    def _create_anthropic(self, body: dict) -> dict:
        return self._anthropic_view(self._new("anthropic", [(r["custom_id"], r["params"]) for r in body["requests"]]))

    def _poll(self, batch_id: str) -> dict:
        batch = self._batches[batch_id]
        self.polls.append(batch_id)
        if batch["state"] == "running" and not self.hold:
            batch["polls"] += 1
            if batch["polls"] > self.polls_before_done:
                self._finish(batch)
        return self._openai_view(batch) if batch["provider"] == "openai" else self._anthropic_view(batch)

    def _finish(self, batch: dict) -> None:
        batch["state"], batch["outcome"] = "done", self.outcome
        lines = [self._line(batch["provider"], custom_id, body) for custom_id, body in batch["requests"]]
        if batch["provider"] == "anthropic":
            batch["results"] = "\n".join(json.dumps(line) for line in lines).encode()
        elif self.outcome is None:
            batch["output"] = f"file-out-{batch['id']}"
            self._files[batch["output"]] = "\n".join(json.dumps(line) for line in lines).encode()

    def _line(self, provider: str, custom_id: str, body: dict) -> dict:
        content = body["messages"][-1]["content"]  # a string, or text blocks (a cached prefix)
        prompt = content if isinstance(content, str) else "".join(block["text"] for block in content)
        text, tokens = self.respond(prompt), len(prompt.split())
        if provider == "openai":
            return {"id": f"batch_req_{custom_id[:8]}", "custom_id": custom_id, "error": None, "response": {
                "status_code": 200, "request_id": "req", "body": {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": tokens, "completion_tokens": 1, "total_tokens": tokens + 1}}}}
        if self.outcome is not None:
            kind, reason = self.outcome
            result = {"type": "expired"} if kind == "expired" else {
                "type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": reason}}}
            return {"custom_id": custom_id, "result": result}
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": tokens, "output_tokens": 1}}}}

    def _openai_view(self, batch: dict) -> dict:
        done, outcome = batch["state"] == "done", batch.get("outcome")
        status = "in_progress" if not done else outcome[0] if outcome else "completed"
        errors = {"object": "list", "data": [{"code": status, "message": outcome[1], "param": None, "line": None}]
                  } if done and outcome else None
        n = len(batch["requests"])
        return {"id": batch["id"], "object": "batch", "endpoint": "/v1/chat/completions",
                "errors": errors, "input_file_id": "file-0",
                "completion_window": "24h", "status": status, "output_file_id": batch["output"],
                "error_file_id": None, "created_at": 0,
                "request_counts": {"total": n, "completed": n if done and not outcome else 0, "failed": 0}}

    def _anthropic_view(self, batch: dict) -> dict:
        done = batch["state"] == "done"
        n = len(batch["requests"])
        return {"id": batch["id"], "type": "message_batch", "processing_status": "ended" if done else "in_progress",
                "request_counts": {"processing": 0 if done else n, "succeeded": n if done else 0, "errored": 0,
                                   "canceled": 0, "expired": 0},
                "created_at": "2026-12-02T00:00:00Z", "expires_at": "2026-12-03T00:00:00Z",
                "ended_at": "2026-12-02T01:00:00Z" if done else None, "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": f"{self.root}/v1/messages/batches/{batch['id']}/results" if done else None}

    def __enter__(self) -> FakeBatches:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
