import pytest
import torch

from lookups import CorpusError, Document, InvalidInputError
from services.scan import scan_corpus
from services.schemas import NeuronRef
from tests.conftest import corpus_texts

CONTEXT = 48


@pytest.fixture(scope="module")
def documents():
    # Varied lengths: some shorter than the context, so padding is exercised.
    texts = corpus_texts(24)
    return [Document(id=f"doc-{i:02d}", text=t[: 40 + 17 * i]) for i, t in enumerate(texts)]


def brute_force_top(model, neuron, documents, k):
    """The paper's way: one document at a time, full forward, whole cache."""
    tokenizer = model.tokenizer
    bos = tokenizer.bos_token_id
    rows = []
    for order, doc in enumerate(documents):
        ids = [bos] + tokenizer(doc.text, add_special_tokens=False)["input_ids"][: CONTEXT - 1]
        with torch.no_grad():
            _, cache = model.bridge.run_with_cache(torch.tensor([ids]))
        acts = cache[f"blocks.{neuron.layer}.mlp.hook_post"][0, :, neuron.index]
        rows.append((float(acts.max()), order, doc.id, int(acts.argmax())))
    rows.sort(key=lambda r: (-r[0], r[1]))
    return rows[:k]


NEURONS = [NeuronRef(layer=3, index=5), NeuronRef(layer=1, index=17), NeuronRef(layer=3, index=40)]


def test_scan_matches_a_per_document_brute_force(tiny_model, documents):
    results = scan_corpus(tiny_model, NEURONS, documents, top_k=5, context_length=CONTEXT)
    assert [r.neuron for r in results] == NEURONS
    for result in results:
        expected = brute_force_top(tiny_model, result.neuron, documents, 5)
        assert [h.doc_id for h in result.hits] == [r[2] for r in expected]
        assert [h.position for h in result.hits] == [r[3] for r in expected]
        assert [h.activation for h in result.hits] == pytest.approx([r[0] for r in expected], abs=1e-4)


def test_results_do_not_depend_on_batch_size(tiny_model, documents):
    one = scan_corpus(tiny_model, NEURONS, documents, top_k=8, context_length=CONTEXT, max_batch=1)
    many = scan_corpus(tiny_model, NEURONS, documents, top_k=8, context_length=CONTEXT,
                       max_batch=32, token_budget=32 * CONTEXT)
    for a, b in zip(one, many):
        assert [(h.doc_id, h.position) for h in a.hits] == [(h.doc_id, h.position) for h in b.hits]
        assert [h.activation for h in a.hits] == pytest.approx([h.activation for h in b.hits], abs=1e-5)


def test_padding_never_wins_a_max(tiny_model):
    # A short document batched with a long one: its hit must lie inside its own tokens.
    docs = [Document(id="short", text="The end"), Document(id="long", text=corpus_texts(1)[0])]
    tokens = len(tiny_model.tokenizer("The end", add_special_tokens=False)["input_ids"])
    for index in range(0, tiny_model.info.d_mlp, 7):
        result = scan_corpus(tiny_model, [NeuronRef(layer=2, index=index)], docs, top_k=2,
                             context_length=CONTEXT)[0]
        short = next(h for h in result.hits if h.doc_id == "short")
        assert 0 <= short.position <= tokens


def test_top_k_larger_than_the_corpus_returns_every_document(tiny_model, documents):
    result = scan_corpus(tiny_model, NEURONS[:1], documents[:3], top_k=10, context_length=CONTEXT)[0]
    assert sorted(h.doc_id for h in result.hits) == [d.id for d in documents[:3]]


def test_bad_input_is_refused_with_the_allowed_range(tiny_model, documents):
    with pytest.raises(InvalidInputError, match=r"layer 4 out of range 0\.\.3"):
        scan_corpus(tiny_model, [NeuronRef(layer=4, index=0)], documents)
    d_mlp = tiny_model.info.d_mlp
    with pytest.raises(InvalidInputError, match=rf"index {d_mlp} out of range 0\.\.{d_mlp - 1}"):
        scan_corpus(tiny_model, [NeuronRef(layer=1, index=d_mlp)], documents)
    with pytest.raises(CorpusError, match="empty"):
        scan_corpus(tiny_model, NEURONS, [])
    with pytest.raises(InvalidInputError, match="at least one neuron"):
        scan_corpus(tiny_model, [], documents)
    with pytest.raises(InvalidInputError, match="top_k"):
        scan_corpus(tiny_model, NEURONS, documents, top_k=0)


def test_a_forward_through_the_last_block_stops_before_the_unembedding(tiny_model, documents):
    """TransformerLens' stop_at_layer cannot stop after the last block: forward_through does,
    reading the same activations as a whole forward."""
    from services.activations import encode_documents, forward_through, pad_id, pad_right

    last = tiny_model.bridge.cfg.n_layers - 1
    ids = encode_documents(tiny_model.tokenizer, [d.text for d in documents[:4]], CONTEXT)
    tokens, _ = pad_right(ids, pad_id(tiny_model.tokenizer), tiny_model.device)
    read, unembedded = [], []
    hooks = [(f"blocks.{last}.mlp.hook_post", lambda post, hook: read.append(post.clone())),
             ("unembed.hook_in", lambda resid, hook: unembedded.append(True))]
    forward_through(tiny_model, tokens, hooks, last)
    assert len(read) == 1 and not unembedded
    with torch.inference_mode():
        _, cache = tiny_model.bridge.run_with_cache(tokens)
    torch.testing.assert_close(read[0], cache[f"blocks.{last}.mlp.hook_post"])
