import pytest

from lookups import InvalidInputError
from services.neurons import is_whole_word, next_token_neurons, random_neurons


@pytest.mark.parametrize(
    ("token", "expected"),
    [(" right", True), (" to", True), (" a", False), ("right", False), (" 42", False),
     (" don't", False), ("  ab", False), (" Über", True), ("", False)],
)
def test_whole_word_rule(token, expected):
    assert is_whole_word(token) is expected


def test_congruence_matches_direct_matrix_product(tiny_model):
    bridge = tiny_model.bridge
    layer = tiny_model.info.n_layers - 1
    found = next_token_neurons(tiny_model, [layer], per_layer=5)
    scores = (bridge.W_out[layer] @ bridge.W_U).detach()
    for neuron in found:
        row = scores[neuron.neuron]
        assert neuron.congruence == pytest.approx(float(row.max()), rel=1e-5)
        assert neuron.token_id == int(row.argmax())
        assert neuron.token == tiny_model.tokenizer.decode([neuron.token_id])


def test_kept_neurons_are_the_best_whole_word_ones(tiny_model):
    bridge = tiny_model.bridge
    layer = 2
    found = next_token_neurons(tiny_model, [layer], per_layer=4)
    assert len(found) == 4
    assert all(is_whole_word(n.token) and n.layer == layer for n in found)
    congruences = [n.congruence for n in found]
    assert congruences == sorted(congruences, reverse=True)
    # No whole-word neuron that was left out beats the weakest one kept.
    scores = (bridge.W_out[layer] @ bridge.W_U).detach()
    best, token_ids = scores.max(dim=-1)
    kept = {n.neuron for n in found}
    for neuron in range(scores.shape[0]):
        if neuron not in kept and is_whole_word(tiny_model.tokenizer.decode([int(token_ids[neuron])])):
            assert float(best[neuron]) <= min(congruences) + 1e-6


def test_several_layers_give_per_layer_neurons_each(tiny_model):
    found = next_token_neurons(tiny_model, [1, 3], per_layer=3)
    assert [n.layer for n in found] == [1, 1, 1, 3, 3, 3]


def test_random_baseline_is_seeded_unfiltered_and_in_range(tiny_model):
    first = random_neurons(tiny_model, [2, 3], per_layer=6, seed=7)
    again = random_neurons(tiny_model, [2, 3], per_layer=6, seed=7)
    other = random_neurons(tiny_model, [2, 3], per_layer=6, seed=8)
    assert first == again
    assert [n.neuron for n in first] != [n.neuron for n in other]
    assert sorted({n.layer for n in first}) == [2, 3]
    assert all(0 <= n.neuron < tiny_model.info.d_mlp for n in first)
    scores = (tiny_model.bridge.W_out[2] @ tiny_model.bridge.W_U).detach()
    for n in first[:6]:
        assert n.token_id == int(scores[n.neuron].argmax())


@pytest.mark.parametrize("layers", [[4], [-1], []])
def test_layers_out_of_range_are_refused(tiny_model, layers):
    with pytest.raises(InvalidInputError, match="layer"):
        next_token_neurons(tiny_model, layers)


def test_random_baseline_refuses_more_neurons_than_the_layer_has(tiny_model):
    with pytest.raises(InvalidInputError, match="per_layer"):
        random_neurons(tiny_model, [1], per_layer=tiny_model.info.d_mlp + 1)
