import pytest
import torch

from lookups import ModelLoadError
from services.subject_model import PACKAGED_MODELS, load_subject_model, packaged_gguf_path, sha256_file


def test_local_checkpoint_records_provenance(tiny_gpt2, tiny_gpt2_dir):
    info = tiny_gpt2.info
    assert info.source == "local"
    assert info.file_sha256 == sha256_file(tiny_gpt2_dir / "model.safetensors")
    assert info.processing == {"fold_ln": True, "center_writing_weights": True, "center_unembed": True}
    assert (info.architecture, info.gated_mlp) == ("GPT2LMHeadModel", False)


def test_gated_architecture_is_recognised(tiny_llama):
    assert (tiny_llama.info.architecture, tiny_llama.info.gated_mlp) == ("LlamaForCausalLM", True)


def test_weights_are_processed_as_in_the_paper(tiny_gpt2):
    # center_unembed: every row of W_U sums to zero; center_writing_weights: W_out rows too.
    bridge = tiny_gpt2.bridge
    assert bridge.W_U.detach().mean(dim=-1).abs().max() < 1e-5
    assert bridge.W_out.detach().mean(dim=-1).abs().max() < 1e-5


def test_dtype_is_applied_and_recorded(tiny_gpt2_dir):
    model = load_subject_model(str(tiny_gpt2_dir), device="cpu", dtype="bfloat16")
    assert model.info.dtype == "bfloat16"
    assert next(model.bridge.parameters()).dtype == torch.bfloat16


def test_unknown_model_offline_names_the_model_and_the_offline_options(offline_hub):
    with pytest.raises(ModelLoadError) as error:
        load_subject_model("nobody/no-such-model-lookups", device="cpu")
    message = str(error.value)
    assert "nobody/no-such-model-lookups" in message
    assert "smollm2-135m" in message


def test_broken_local_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_subject_model(str(tmp_path), device="cpu")


def test_a_packaged_gguf_with_another_hash_than_the_pinned_one_is_refused(tmp_path):
    spec = PACKAGED_MODELS["smollm2-135m"].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ModelLoadError, match="has SHA-256 [0-9a-f]{64}, expected 0{64}"):
        packaged_gguf_path(spec, tmp_path)
