"""The tests run services with its jaxtyping annotations checked (tests/conftest.py): a tensor of
the wrong shape or dtype, or dimensions that disagree between arguments, is a TypeCheckError at
the call, not a wrong number later. If these fail, every other test has stopped checking shapes."""

import pytest
import torch
from jaxtyping import TypeCheckError

from services.attribution import active_heads
from services.neurons import congruence


def test_a_tensor_of_the_wrong_rank_or_dtype_is_refused():
    assert active_heads(torch.zeros(2, 4, 3)).shape == (2, 4, 3)
    with pytest.raises(TypeCheckError, match="scores"):
        active_heads(torch.zeros(2, 12))
    with pytest.raises(TypeCheckError, match="scores"):
        active_heads(torch.zeros(2, 4, 3, dtype=torch.long))


def test_dimensions_shared_by_arguments_must_agree():
    values, indices = congruence(torch.randn(6, 4), torch.randn(4, 9))
    assert values.shape == indices.shape == (6,)
    with pytest.raises(TypeCheckError, match="w_u"):
        congruence(torch.randn(6, 4), torch.randn(5, 9))  # d_model 4 against 5
