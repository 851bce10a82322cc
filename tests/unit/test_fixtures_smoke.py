def test_tiny_models_load_with_expected_shapes(tiny_model):
    info = tiny_model.info
    assert info.source == "local"
    assert info.n_layers == 4 and info.n_heads == 4
    assert tiny_model.bridge.W_out.shape == (4, info.d_mlp, info.d_model)
