"""The OpenAI-compatible backends follow no redirect (issue 24): a server the URL policy allows
that answers 307 must not get the prompt sent on to a server the policy refuses. Two real fake
servers on loopback: the allowed one redirects, the other records what reaches it."""

from __future__ import annotations

import pytest
from fake_openai import FakeOpenAI, error

from lookups import LLMRequest, LookupsError


@pytest.mark.parametrize("spec", ["openai:fake-gpt", "openai-compatible:{url}:fake-gpt"])
def test_a_redirect_is_an_error_and_the_prompt_never_reaches_its_target(settings, fake_server, spec):
    from services.llm.client import LLMClient
    from services.llm.registry import create_backend

    with FakeOpenAI() as elsewhere:
        for _ in range(10):  # every attempt the client makes is redirected
            fake_server.faults.append(error(307, "moved", {"Location": f"{elsewhere.url}/chat/completions"}))
        options = {"timeout": 2} if "{url}" in spec else {"base_url": fake_server.url, "timeout": 2}
        backend = create_backend(spec.format(url=fake_server.url), options)
        client = LLMClient(backend, settings=settings)
        with pytest.raises(LookupsError, match="307"):
            client.call(LLMRequest(prompt="the secret prompt", max_tokens=1, purpose="test"))
        assert fake_server.requests and elsewhere.requests == []
