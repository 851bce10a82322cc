"""What a head reads: attention at the last position, checked against run_with_cache; the
log-odds contrast; and the contrastive explainer prompt built from them."""

from __future__ import annotations

import pytest

from lookups import SourceRead
from plugins.explainers.contrastive import contrast_reads
from services.attribution import HeadRef
from services.head_reads import head_reads, token_pieces


def encode(model, texts):
    return [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


TEXTS = ["The quick brown fox jumps over the lazy dog and then turns", "Go left at the",
         "Prices rose again in the second quarter of the year, analysts said, while"]


def test_pieces_concatenate_to_the_prompt(tiny_model):
    for tokens in encode(tiny_model, TEXTS + ["naïve café — ünïcode"]):
        pieces = token_pieces(tiny_model.tokenizer, tokens)
        assert len(pieces) == len(tokens)
        assert "".join(pieces) == tiny_model.tokenizer.decode(tokens)


def test_reads_match_the_attention_pattern_of_each_prompt_alone(tiny_model):
    import torch

    heads = [HeadRef(layer=0, head=1), HeadRef(layer=2, head=3)]
    prompts = encode(tiny_model, TEXTS)
    found = head_reads(tiny_model, prompts, heads, per_head=2)  # batched, padded
    bos = tiny_model.tokenizer.bos_token_id
    for tokens, reads in zip(prompts, found):
        _, cache = tiny_model.bridge.run_with_cache(torch.tensor([[bos, *tokens]]))
        for head in heads:
            row = cache[f"blocks.{head.layer}.attn.hook_pattern"][0, head.head, -1, 1:]
            top = torch.topk(row, 2)
            got = reads.heads[str(head)]
            assert [r.position for r in got] == top.indices.tolist()
            assert [r.weight for r in got] == pytest.approx(top.values.tolist(), abs=1e-5)
            assert all(r.offset == r.position - (len(tokens) - 1) for r in got)
            assert all(r.token == reads.pieces[r.position] for r in got)


def read(token: str, offset: int = -1) -> SourceRead:
    return SourceRead(position=10 + offset, offset=offset, token=token, weight=0.5)


def test_contrast_ranks_tokens_read_on_active_prompts_first():
    active = [[read(" left"), read(" the", -3)], [read(" Left", -2)], [read(" left"), read(" a")]]
    inactive = [[read(" the", -5)], [read(" the", -4), read(" a")], [read(" of", -6)], [read(" the", -7)]]
    contrast = contrast_reads(active, inactive)

    assert contrast.tokens[0].token == "left"  # case and spaces folded
    assert (contrast.tokens[0].active, contrast.tokens[0].inactive) == (3, 0)
    assert contrast.tokens[-1].token == "the" and contrast.tokens[-1].log_odds < 0
    odds = [t.log_odds for t in contrast.tokens]
    assert odds == sorted(odds, reverse=True)
    assert (contrast.active_offset, contrast.inactive_offset) == (-1.0, -5.5)


def test_contrastive_prompt_marks_reads_and_states_the_evidence():
    from lookups import ExplainRequest, HeadExample, InvalidInputError
    from plugins.explainers.contrastive import marked
    from services.llm.registry import get_strategy, get_template

    def example(words: list[str], position: int, active: bool, attribution: float) -> HeadExample:
        pieces = [words[0], *(" " + w for w in words[1:])]
        return HeadExample(text="".join(pieces), active=active, attribution=attribution, pieces=pieces,
                           reads=[SourceRead(position=position, offset=position - len(words) + 1,
                                             token=pieces[position], weight=0.6)])

    examples = [example(["Turn", "left", "at", "the"], 1, True, 3.0),
                example(["Go", "left", "then"], 1, True, 2.0),
                example(["Prices", "rose", "in", "the"], 3, False, 1.5),
                example(["She", "went", "to", "the"], 3, False, 0.1),
                example(["Born", "in", "the"], 2, False, 0.9)]
    request = ExplainRequest(token=" right", active_examples=["a"], examples=examples)
    prompt = get_strategy("contrastive").request(get_template("neo2024"), request).prompt

    assert marked(examples[0]) == "Turn [[left]] at the"
    assert "* Turn [[left]] at the\n" in prompt and "Do not mention \" right\"" in prompt
    assert '"left" (2 of 2 active, 0 of 3 inactive)' in prompt
    assert '"the" (0 of 2 active, 3 of 3 inactive)' in prompt
    # near misses: the inactive prompts with the highest attribution first
    assert prompt.index("Prices rose") < prompt.index("Born in") < prompt.index("She went")
    with pytest.raises(InvalidInputError, match="oneshot"):
        get_strategy("contrastive").request(get_template("neo2024"),
                                            request.model_copy(update={"examples": None}))
