"""The explain calls of a finished campaign, decoded one token per pass and by prompt lookup.

Rebuilds every head's explain prompt from a campaign's stored results (the same code as the
explain stage) and sends them, in order, to the local backend's chat model, for each weight
file and ``draft_tokens`` setting: seconds, output tokens, forward passes after the prompts, and
how many answers are the same as decoding one token per pass from the same file. Nothing is
cached or written; run it with nothing else on the machine.

    .venv/bin/python bench/prompt_lookup_bench.py --results-url sqlite:///results.db [--campaign ID]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from langchain_core.messages import HumanMessage
from sqlalchemy import select

from plugins.backends.llama_chat import LlamaCppChat
from services.campaigns.records import campaign_heads, explain_request_for
from services.llm.registry import create_backend, get_strategy, get_template
from services.store import Store
from services.store.models import Campaign


def explain_prompts(url: str, campaign_id: str | None) -> tuple[list[str], int]:
    """The campaign's explain prompts (one per head) and their output-token cap."""
    store = Store(url)
    with store.session() as session:
        query = select(Campaign).order_by(Campaign.created_at.desc())
        campaign = session.get_one(Campaign, campaign_id) if campaign_id else session.scalars(query).first()
        if campaign is None:
            raise SystemExit(f"no campaign in {url}")
        config = campaign.config
        strategy, template = get_strategy(config.explainer_strategy), get_template(config.explainer_template)
        requests = [strategy.request(template, explain_request_for(session, campaign.id, head, config))
                    for head in campaign_heads(session, campaign.id)]
    return [r.prompt for r in requests], requests[0].max_tokens


def run(model_path: str, prompts: list[str], max_tokens: int, draft_tokens: int) -> tuple[float, list[str], int, int]:
    chat = LlamaCppChat(model_path=model_path, max_tokens=max_tokens, draft_tokens=draft_tokens)
    chat.invoke([HumanMessage(content="Warm up.")])
    started = time.perf_counter()
    answers = [chat.invoke([HumanMessage(content=prompt)]) for prompt in prompts]
    seconds = time.perf_counter() - started
    return (seconds, [a.content for a in answers], sum(a.usage_metadata["output_tokens"] for a in answers),
            sum(a.response_metadata["decode_passes"] for a in answers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results-url", default=os.environ.get("LOOKUPS_RESULTS_URL"))
    parser.add_argument("--campaign", default=None, help="Campaign id (default: the latest).")
    parser.add_argument("--models", default="local,local:smollm2-f16")
    parser.add_argument("--draft-tokens", default="0,10", help="Settings to compare; the first is the reference.")
    args = parser.parse_args()
    if not args.results_url:
        parser.error("--results-url (or LOOKUPS_RESULTS_URL) is needed: the store of a finished campaign")
    prompts, max_tokens = explain_prompts(args.results_url, args.campaign)
    machine = platform.processor() or platform.machine()
    print(f"{len(prompts)} explain prompts, up to {max_tokens} tokens each; {machine}, {os.cpu_count()} CPUs\n")
    print("| weights | draft_tokens | seconds | output tokens | passes after the prompts | same answers |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for spec in args.models.split(","):
        path = create_backend(spec).model
        reference = None
        for draft_tokens in (int(d) for d in args.draft_tokens.split(",")):
            seconds, answers, tokens, passes = run(path, prompts, max_tokens, draft_tokens)
            reference = reference or answers
            same = sum(a == b for a, b in zip(answers, reference))
            print(f"| `{spec}` | {draft_tokens} | {seconds:.1f} | {tokens} | {passes} | {same} / {len(prompts)} |",
                  flush=True)


if __name__ == "__main__":
    main()
