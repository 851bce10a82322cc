"""``contrastive``: active examples against near misses, with what the head reads marked in each
and the measured difference in numbers.

Near misses are prompts where the neuron fires but this head is inactive, the ones with the
highest attribution first (almost active). Each example marks the tokens the head attends to
most from the firing position; the evidence lists the read tokens ranked by log-odds of being
read on active rather than inactive prompts (``contrast_reads``), so a small
explainer phrases a measured difference instead of searching twenty documents for one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pydantic import BaseModel, Field

from lookups import (
    ExplainerStrategy,
    ExplainRequest,
    HeadExample,
    InvalidInputError,
    LLMRequest,
    SourceRead,
    hookimpl,
)

MAX_ACTIVE = 8
MAX_NEAR_MISSES = 8
EVIDENCE_FOR, EVIDENCE_AGAINST = 5, 3
MAX_TOKENS = 120


class TokenContrast(BaseModel):
    token: str
    active: int = Field(description="Active prompts on which the head reads this token.")
    inactive: int = Field(description="Inactive prompts on which the head reads this token.")
    log_odds: float = Field(description="log odds of being read on active vs inactive prompts (+0.5 smoothing).")


class ReadContrast(BaseModel):
    """The measured difference between a head's reads on active and on inactive prompts."""

    n_active: int
    n_inactive: int
    tokens: list[TokenContrast] = Field(description="Every read token, most active-specific first.")
    active_offset: float | None = Field(description="Median offset of the strongest read, active prompts.")
    inactive_offset: float | None = Field(description="Median offset of the strongest read, inactive prompts.")


def _word(token: str) -> str:
    return token.strip().lower() or token


def contrast_reads(active: Sequence[list[SourceRead]], inactive: Sequence[list[SourceRead]]) -> ReadContrast:
    """Rank read tokens by how much likelier the head reads them on active prompts.

    Each prompt counts a token once (case and surrounding spaces ignored); log-odds use +0.5
    smoothing so a token seen on every active prompt and no inactive one stays finite."""
    def counts(groups: Sequence[list[SourceRead]]) -> dict[str, int]:
        found: dict[str, int] = {}
        for reads in groups:
            for word in {_word(r.token) for r in reads}:
                found[word] = found.get(word, 0) + 1
        return found

    on_active, on_inactive = counts(active), counts(inactive)
    n_a, n_i = len(active), len(inactive)

    def log_odds(a: int, i: int) -> float:
        return (math.log((a + 0.5) / (n_a - a + 0.5)) - math.log((i + 0.5) / (n_i - i + 0.5)))

    tokens = [TokenContrast(token=w, active=on_active.get(w, 0), inactive=on_inactive.get(w, 0),
                            log_odds=log_odds(on_active.get(w, 0), on_inactive.get(w, 0)))
              for w in sorted(set(on_active) | set(on_inactive))]
    tokens.sort(key=lambda t: (-t.log_odds, -t.active, t.token))

    def median_offset(groups: Sequence[list[SourceRead]]) -> float | None:
        offsets = [reads[0].offset for reads in groups if reads]
        return float(statistics.median(offsets)) if offsets else None

    return ReadContrast(n_active=n_a, n_inactive=n_i, tokens=tokens,
                        active_offset=median_offset(active), inactive_offset=median_offset(inactive))



_PROMPT = '''We are studying an attention head in a transformer language model. It helps the model predict that the next token is "{token}" in some documents but not in others. Every document below, active or not, is followed by "{token}", so that token is not what makes the difference. In each document, [[double brackets]] mark the tokens this head reads most (attends to) from the document's last token.

Documents where the head is active:
"""
{active}
"""
Near misses: documents where the head is inactive, the closest first:
"""
{near_misses}
"""
What the head reads, counted over {n_active} active and {n_inactive} inactive documents:
{evidence}'''
_ASK = '''In one or two sentences, say what the active documents have and the near misses lack. Name concrete words, phrases or patterns near the end of a document that a reader can check in a new document. Do not mention "{token}".'''


def marked(example: HeadExample) -> str:
    """The prompt with each read token in [[ ]] (its leading space kept outside)."""
    positions = {r.position for r in example.reads}
    parts = []
    for index, piece in enumerate(example.pieces):
        if index in positions and piece.strip():
            stripped = piece.lstrip()
            parts.append(f"{piece[:len(piece) - len(stripped)]}[[{stripped}]]")
        else:
            parts.append(piece)
    return "".join(parts)


def evidence_lines(contrast: ReadContrast) -> str:
    def listed(tokens) -> str:
        return "; ".join(f'"{t.token}" ({t.active} of {contrast.n_active} active, '
                         f"{t.inactive} of {contrast.n_inactive} inactive)" for t in tokens)

    favour = [t for t in contrast.tokens if t.log_odds > 0 and t.active >= 2][:EVIDENCE_FOR]
    against = [t for t in reversed(contrast.tokens) if t.log_odds < 0 and t.inactive >= 2][:EVIDENCE_AGAINST]
    lines = [f"- read more often when active: {listed(favour) or 'no token stands out'}",
             f"- read more often when inactive: {listed(against) or 'no token stands out'}"]
    if contrast.active_offset is not None and contrast.inactive_offset is not None:
        lines.append(f"- its strongest read sits a median of {-contrast.active_offset:g} tokens before the end "
                     f"in active documents, {-contrast.inactive_offset:g} in inactive ones")
    return "\n".join(lines)


def evidence(request: ExplainRequest, strategy: str) -> str:
    """The examples, near misses and measured evidence: everything but the question."""
    if not request.examples:
        raise InvalidInputError(
            f"the {strategy} strategy needs each example's attribution and reads ('examples'): "
            "campaigns fill them in; for a single request use the oneshot strategy")
    by_attribution = sorted(request.examples, key=lambda e: -e.attribution)
    active = [e for e in by_attribution if e.active]
    inactive = [e for e in by_attribution if not e.active]
    contrast = contrast_reads([e.reads for e in active], [e.reads for e in inactive])
    lines = lambda examples: "\n".join(f"* {marked(e)}" for e in examples)  # noqa: E731
    return _PROMPT.format(
        token=request.token, active=lines(active[:MAX_ACTIVE]),
        near_misses=lines(inactive[:MAX_NEAR_MISSES]) or "(none)",
        n_active=len(active), n_inactive=len(inactive), evidence=evidence_lines(contrast))


class Contrastive(ExplainerStrategy):
    name = "contrastive"
    description = ("Active examples against near misses, the tokens the head reads marked, and the "
                   "read tokens ranked by log-odds (active vs inactive)")
    wording = _PROMPT + _ASK + f"|{MAX_ACTIVE}|{MAX_NEAR_MISSES}|{EVIDENCE_FOR}|{EVIDENCE_AGAINST}|{MAX_TOKENS}"

    def request(self, template, request: ExplainRequest) -> LLMRequest:
        prompt = evidence(request, self.name) + "\n\n" + _ASK.format(token=request.token)
        return LLMRequest(prompt=prompt, max_tokens=MAX_TOKENS, purpose="explain",
                          template_version=self.version(template))


@hookimpl
def register_explainers(register) -> None:
    register(Contrastive())
