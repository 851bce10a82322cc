"""Issue 24, the HTTP layer against the real app and a real SQLite store: a body limit that
holds for every framing, before parsing and before authentication (over a real uvicorn server,
since the in-process client cannot send chunked framing beside a Content-Length), no redirect
that echoes Host, security headers on every response and a strict policy on the HTML report."""

from __future__ import annotations

import re
import select
import socket
import subprocess
import threading
import time

import httpx
import pytest

from tests.integration.conftest import free_port
from tests.unit.api.conftest import TOKEN
from tests.unit.api.test_app import CONFIG

LIMIT = 20_000  # the test settings' api_max_request_bytes


@pytest.fixture
def server(settings, store, monkeypatch):
    """The app served by uvicorn on a free loopback port, in a thread."""
    import uvicorn

    from api.app import create_app

    monkeypatch.setenv("LOOKUPS_BROKER_URL", settings.broker_url)
    port = free_port()
    served = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    served.should_exit = True
    thread.join(timeout=10)


def send_chunked(port: int, extra_headers: str, total: int) -> tuple[str, int]:
    """POST /v1/campaigns with a chunked body of ``total`` bytes, sent until the server answers;
    the status line and how many body bytes went out before it did."""
    chunk = b"x" * 65_536
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("POST /v1/campaigns HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Transfer-Encoding: chunked\r\n{extra_headers}\r\n").encode())
        sent = 0
        while sent < total and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = sock.recv(65_536).decode(errors="replace")
    return answer.split("\r\n", 1)[0], sent


@pytest.mark.parametrize("headers", ["", "Content-Length: 10\r\n", f"Authorization: Bearer {TOKEN}\r\n"],
                         ids=["no-token", "small-content-length-beside-chunked", "with-token"])
def test_a_chunked_body_is_refused_at_the_limit_as_it_arrives(server, store, headers):
    from tests.unit.api.test_security_paths import stored

    status, sent = send_chunked(server, headers, total=50_000_000)
    assert status == "HTTP/1.1 413 Request Entity Too Large", status  # not 401, not parsed: refused first
    assert sent < 10_000_000  # the server answered while the 50 MB were still coming
    assert stored(store) == (0, 0)


def test_a_chunked_body_under_the_limit_is_accepted(server, store):
    body = httpx.Client().build_request("POST", "/", json=CONFIG).content

    def pieces():
        yield from (body[i:i + 7] for i in range(0, len(body), 7))

    response = httpx.post(f"http://127.0.0.1:{server}/v1/campaigns", content=pieces(),
                          headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 202, response.text
    refused = httpx.post(f"http://127.0.0.1:{server}/v1/campaigns", content=iter([b"{" + b" " * LIMIT + b"}"]),
                         headers={"Content-Type": "application/json"})
    assert refused.status_code == 413 and refused.json()["detail"] == f"request body over {LIMIT} bytes"


def test_a_declared_length_over_the_limit_is_refused_before_the_token_is_read(client):
    client.headers.pop("Authorization")
    refused = client.post("/v1/campaigns", content=b"{" + b" " * LIMIT + b"}",
                          headers={"Content-Type": "application/json"})
    assert refused.status_code == 413


SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def test_no_redirect_echoes_host(client):
    for path in ("/v1/campaigns/", "/v1/jobs/explain/", "/healthz/"):
        answer = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert not answer.is_redirect and "location" not in answer.headers, path
        assert answer.status_code in (404, 405), path


def test_every_response_carries_the_security_headers(client):
    campaign = client.post("/v1/campaigns", json=CONFIG).json()["id"]
    answers = [client.get("/healthz"), client.get("/v1/campaigns"), client.get("/v1/campaigns/nope"),
               client.post("/v1/campaigns", json={**CONFIG, "per_layer": 0}),
               client.get("/v1/campaigns", headers={"Authorization": "Bearer nope"}),
               client.post("/v1/campaigns", content=b"x" * (LIMIT + 1)), client.get("/openapi.json")]
    for answer in answers:
        for name, value in SECURITY.items():
            assert answer.headers.get(name) == value, (answer.request.url, answer.status_code, name)
        assert answer.headers["content-security-policy"].startswith("default-src 'none'"), answer.request.url

    report = client.get(f"/v1/campaigns/{campaign}/report")
    assert report.status_code == 200 and all(report.headers[name] == value for name, value in SECURITY.items())
    policy = report.headers["content-security-policy"]
    assert len(report.headers.get_list("content-security-policy")) == 1  # its own, not the default beside it
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'" and directives["img-src"] == "data:"
    assert directives["frame-ancestors"] == "'none'" and "script-src" not in directives  # so none, from default-src
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/=]{44}'", directives["style-src"]) and "unsafe" not in policy


def chromium_console(html: str, tmp_path) -> str:
    """What chromium's console says while it renders ``html``."""
    tmp_path.mkdir()
    page = tmp_path / "page.html"
    page.write_text(html)
    shown = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                            "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                           capture_output=True, text=True, timeout=120)
    assert "</html>" in shown.stdout, shown.stderr[-2000:]
    return shown.stderr


def test_the_report_renders_under_its_policy_in_chromium(client, tmp_path):
    """Chromium applies the report's policy (as a meta element: a file has no headers) and
    refuses nothing; the same page under a policy with another style hash has its style refused,
    so the check can see a refusal."""
    import shutil

    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed (Debian package chromium)")
    campaign = client.post("/v1/campaigns", json=CONFIG).json()["id"]
    report = client.get(f"/v1/campaigns/{campaign}/report")
    policy = report.headers["content-security-policy"].replace("frame-ancestors 'none'; ", "")  # headers only

    def under(given: str) -> str:
        return report.text.replace("<head>", f'<head><meta http-equiv="Content-Security-Policy" content="{given}">', 1)

    assert "Content Security Policy" not in chromium_console(under(policy), tmp_path / "kept")
    wrong = re.sub(r"'sha256-[^']+'", "'sha256-" + "A" * 43 + "='", policy)
    assert "Applying inline style violates the following Content Security Policy" in chromium_console(
        under(wrong), tmp_path / "wrong")
