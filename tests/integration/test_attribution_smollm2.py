"""Head attribution and ablation on the real SmolLM2-135M (gated SiLU MLP, 9 heads on 3 KV heads)."""

import pytest
import torch

from services.ablation import neuron_token, token_probability_drops
from services.attribution import HeadRef, Prompt, attribute_neuron, head_attributions
from services.schemas import NeuronRef

pytestmark = pytest.mark.slow  # about a minute on 2 shared CPU cores

NEURON = NeuronRef(layer=27, index=1263)  # writes ' right' (docs/method.md step 1)
TEXTS = ["Turn left at the lights and then turn", "You are absolutely", "I will be there"]


@pytest.fixture(scope="module")
def prompts(smollm2):
    return [smollm2.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]


def test_linearised_scores_match_the_gated_mlp_gradient_from_the_cache(smollm2, prompts):
    """Per prompt: autograd of silu(x·w_gate)(x·w_in) at the cached MLP input (which must
    reproduce the cached hook_post), dotted with each head's result over the ln2 scale."""
    bridge, layer, index = smollm2.bridge, NEURON.layer, NEURON.index
    mlp = bridge.blocks[layer].mlp
    batched = head_attributions(smollm2, NEURON, prompts)
    assert batched.shape == (3, layer, 9)
    for row, prompt in enumerate(prompts):
        with torch.no_grad():
            _, cache = bridge.run_with_cache(torch.tensor([[smollm2.tokenizer.bos_token_id, *prompt]]))
        x = cache[f"blocks.{layer}.mlp.hook_in"][0, -1].clone().requires_grad_(True)
        post = torch.nn.functional.silu(x @ mlp.W_gate[:, index]) * (x @ mlp.W_in[:, index])
        assert post.item() == pytest.approx(cache[f"blocks.{layer}.mlp.hook_post"][0, -1, index].item(), rel=1e-4)
        (direction,) = torch.autograd.grad(post, x)
        with torch.no_grad():
            results = cache.stack_head_results(layer=layer, pos_slice=-1)[:, 0]
            direct = (results / cache[f"blocks.{layer}.ln2.hook_scale"][0, -1] @ direction).reshape(layer, 9)
        torch.testing.assert_close(batched[row], direct, rtol=1e-3, atol=1e-5)


def test_attribution_and_ablation_end_to_end(smollm2, prompts):
    assert neuron_token(smollm2, NEURON)[1] == " right"
    result = attribute_neuron(smollm2, NEURON, [Prompt(text=t, tokens=p) for t, p in zip(TEXTS, prompts)])
    assert result.definition == "linearised"
    assert all(p.active for p in result.prompts)  # 243 candidates: a few stand out on each prompt
    head = result.prompts[0].active[0]
    token_id = neuron_token(smollm2, NEURON)[0]
    # A head sharing the same KV head (query heads 3k..3k+2 share KV head k): zeroing hook_v
    # would give both ablations the same effect; zeroing hook_z keeps them apart.
    sibling = HeadRef(layer=head.layer, head=head.head // 3 * 3 + (head.head + 1) % 3)
    clean, by_head = token_probability_drops(smollm2, [head, sibling], token_id, prompts)
    ablated, sibling_ablated = by_head[head], by_head[sibling]
    assert clean.shape == ablated.shape == (3,)
    assert torch.all((clean > 0) & (clean < 1)) and not torch.equal(clean, ablated)
    assert not torch.allclose(ablated, sibling_ablated)
