"""Held-out test prompts (step 6): scanned on the test split, labelled by the step-4 criterion."""

import pytest

from lookups import Document, InvalidInputError
from services.ablation import activation_drops
from services.attribution import HeadActivity, HeadRef, NeuronAttribution, PromptHeads, head_attributions
from services.corpus import load_corpus, split_documents
from services.held_out import held_out_test_prompts, label_test_prompts
from services.schemas import NeuronRef, TruncatedPrompt


def train_attribution(neuron, heads, definition="paper"):
    """A step-6 result naming the heads worth explaining (its train prompts do not matter here)."""
    return NeuronAttribution(
        neuron=neuron, definition=definition, active_stds=2.0, worth_range=(0.25, 0.75), prompts=[],
        worth_explaining=[HeadActivity(head=h, active_fraction=0.5) for h in heads],
    )


def truncated(i):
    return TruncatedPrompt(doc_id=f"t{i}", text=f"p{i}", tokens=[i + 1], activation=1.0, original_activation=1.0)


def test_labels_follow_the_active_heads_and_one_class_heads_are_marked():
    neuron = NeuronRef(layer=3, index=1)
    a, b = HeadRef(layer=0, head=1), HeadRef(layer=2, head=0)
    prompts = [truncated(i) for i in range(12)]
    tested = train_attribution(neuron, []).model_copy(update={"prompts": [
        PromptHeads(text=p.text, tokens=p.tokens, scores=[], active=[a] if i % 3 == 0 else [])
        for i, p in enumerate(prompts)
    ]})
    sets = label_test_prompts(tested, prompts, [a, b], per_head=10)
    assert [s.head for s in sets] == [a, b]
    assert [p.active for p in sets[0].prompts] == [i % 3 == 0 for i in range(10)]
    assert not sets[0].one_class
    assert sets[1].one_class and len(sets[1].prompts) == 10  # never active: marked, not dropped


def test_held_out_prompts_come_from_the_test_split_and_are_labelled(tiny_gpt2, corpus_path):
    corpus = load_corpus(str(corpus_path))
    test_docs = [Document(id=d.id, text=d.text[:400])
                 for d in split_documents(corpus, "test", test_from_id="owt-0800")[:40]]
    neuron = NeuronRef(layer=3, index=5)
    heads = [HeadRef(layer=2, head=1), HeadRef(layer=0, head=0)]
    skipped = train_attribution(NeuronRef(layer=2, index=9), [])  # nothing worth explaining
    sets = held_out_test_prompts(tiny_gpt2, [train_attribution(neuron, heads), skipped], iter(test_docs),
                                 fetch=lambda ids: [d for d in test_docs if d.id in ids],
                                 per_head=10, top_k=15, context_length=64)
    assert [(s.neuron, s.head) for s in sets] == [(neuron, h) for h in heads]
    prompts = [p.prompt for p in sets[0].prompts]
    assert 0 < len(prompts) <= 10
    assert {p.doc_id for p in prompts} <= {d.id for d in test_docs}
    scores = head_attributions(tiny_gpt2, neuron, [p.tokens for p in prompts])
    flat = scores.flatten(1)
    expected = scores > (flat.mean(1) + 2 * flat.std(1))[:, None, None]
    for test_set, head in zip(sets, heads):
        labels = [p.active for p in test_set.prompts]
        assert labels == expected[:, head.layer, head.head].tolist()
        assert test_set.one_class == (len(set(labels)) == 1)
        assert test_set.definition == "paper"
    effects = activation_drops(tiny_gpt2, neuron, heads, [p.tokens for p in prompts])
    for test_set, head in zip(sets, heads):
        assert [p.effect for p in test_set.prompts] == pytest.approx(effects[head].tolist())


def test_no_heads_worth_explaining_means_no_scan(tiny_gpt2):
    assert held_out_test_prompts(tiny_gpt2, [train_attribution(NeuronRef(layer=1, index=0), [])], [],
                                 fetch=lambda ids: []) == []


def test_balanced_sampling_draws_each_class_in_rank_order_and_notes_a_short_class():
    neuron = NeuronRef(layer=3, index=1)
    a = HeadRef(layer=0, head=1)
    prompts = [truncated(i) for i in range(12)]  # a is active on 0, 3, 6, 9
    tested = train_attribution(neuron, []).model_copy(update={"prompts": [
        PromptHeads(text=p.text, tokens=p.tokens, scores=[], active=[a] if i % 3 == 0 else [])
        for i, p in enumerate(prompts)
    ]})
    (three,) = label_test_prompts(tested, prompts, [a], per_head=3, sampling="balanced")
    assert [p.prompt.doc_id for p in three.prompts] == ["t0", "t1", "t2", "t3", "t4", "t6"]
    assert three.n_active == 3 and three.note is None and three.sampling == "balanced"
    (five,) = label_test_prompts(tested, prompts, [a], per_head=5, sampling="balanced")
    assert five.n_active == 4 and len(five.prompts) == 9
    assert five.note is not None and "4 active" in five.note and not five.one_class


def scored(neuron, values, head):
    """An attribution whose prompts give ``head`` these scores (2 layers x 2 heads, others 0)."""
    prompts = []
    for i, value in enumerate(values):
        scores = [[0.0, 0.0], [0.0, 0.0]]
        scores[head.layer][head.head] = value
        prompts.append(PromptHeads(text=f"p{i}", tokens=[i + 1], scores=scores, active=[]))
    return train_attribution(neuron, [head]).model_copy(update={"prompts": prompts})


def test_per_head_activity_labels_test_prompts_against_the_training_median():
    neuron, head = NeuronRef(layer=2, index=0), HeadRef(layer=1, head=0)
    train = scored(neuron, [0.1, 0.2, 0.3, 0.4, 0.5], head)  # median 0.3
    tested = scored(neuron, [0.9, 0.8, 0.35, 0.25, 0.7, 0.6], head)  # its own median would be 0.65
    prompts = [truncated(i) for i in range(6)]
    (test_set,) = label_test_prompts(tested, prompts, [head], per_head=6, activity="per-head", train=train)
    assert [p.active for p in test_set.prompts] == [True, True, True, False, True, True]
    assert test_set.activity == "per-head"
    (paper,) = label_test_prompts(tested, prompts, [head], per_head=6)
    assert paper.one_class  # the paper's rule: never active (active lists are empty)
    with pytest.raises(InvalidInputError, match="train"):
        label_test_prompts(tested, prompts, [head], activity="per-head")


def test_balanced_test_sets_carry_each_heads_own_ablation_effects(tiny_gpt2, corpus_path):
    corpus = load_corpus(str(corpus_path))
    test_docs = [Document(id=d.id, text=d.text[:400])
                 for d in split_documents(corpus, "test", test_from_id="owt-0800")[:40]]
    neuron = NeuronRef(layer=3, index=5)
    heads = [HeadRef(layer=2, head=1), HeadRef(layer=0, head=0), HeadRef(layer=1, head=2)]
    sets = held_out_test_prompts(tiny_gpt2, [train_attribution(neuron, heads)], iter(test_docs),
                                 fetch=lambda ids: [d for d in test_docs if d.id in ids],
                                 per_head=3, sampling="balanced", top_k=5, context_length=64)
    assert all(len(s.prompts) <= 6 and s.sampling == "balanced" for s in sets)
    for test_set in sets:
        tokens = [p.prompt.tokens for p in test_set.prompts]
        if tokens:
            expected = activation_drops(tiny_gpt2, neuron, [test_set.head], tokens)[test_set.head]
            assert [p.effect for p in test_set.prompts] == pytest.approx(expected.tolist())
