"""Shared fixtures: tiny real models built from a config, a real offline tokenizer, the corpus.

Tiny models are saved as ordinary Hugging Face checkpoints and loaded through the same
``load_subject_model`` path users take, so tests exercise the real loading code in seconds.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest


def _check_shapes_at_runtime() -> None:
    """Every test checks the jaxtyping shape annotations (and all other annotations) of
    ``services`` at runtime: jaxtyping's import hook decorates each function and dataclass in
    services with ``@jaxtyped(typechecker=beartype)``. It has to be installed before anything
    imports services, which this file, the first conftest pytest loads, is.

    services imports ``Float``/``Int``/``Bool`` and torch's ``Tensor`` only under TYPE_CHECKING
    (importing services must not import torch), and an annotation jaxtyping cannot resolve when
    the function is defined is checked as ``Any``. So the tests make those four names builtins,
    where annotations resolve them. Code using them at runtime would pass here and fail in
    production; ruff's TC004 (pyproject.toml) refuses such code.
    """
    import builtins
    import sys

    import jaxtyping
    import torch

    if getattr(builtins, "Tensor", None) is torch.Tensor:
        return  # this file runs twice: as pytest's conftest and as tests.conftest
    imported = sorted(name for name in sys.modules if name.split(".")[0] == "services")
    if imported:
        raise RuntimeError(f"services imported before the shape-check hook: {imported}")
    for name in ("Float", "Int", "Bool"):
        setattr(builtins, name, getattr(jaxtyping, name))
    builtins.Tensor = torch.Tensor
    # The PEP 484 numeric tower, as mypy has it: an int is a float (beartype's default refuses it).
    jaxtyping.install_import_hook(["services"], "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))")


_check_shapes_at_runtime()

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpora" / "openwebtext-1k.jsonl.gz"
INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config, items):
    """Test tiers: everything under tests/integration is marked ``integration``, so
    ``-m "not integration and not slow"`` selects the fast unit tier."""
    for item in items:
        if INTEGRATION in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


def corpus_texts(n: int) -> list[str]:
    with gzip.open(CORPUS, "rt") as handle:
        return [json.loads(line)["text"] for line, _ in zip(handle, range(n))]


@pytest.fixture(scope="session")
def corpus_path() -> Path:
    if not CORPUS.is_file():
        pytest.fail(f"the shared corpus is missing: {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A byte-level BPE (GPT-2 style, 'Ġword' tokens) trained on 200 corpus documents."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus_texts(200), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(path)
    return path


def _save_tiny(config, model_class, tokenizer_dir: Path, path: Path) -> Path:
    import shutil

    import torch

    torch.manual_seed(0)
    model = model_class(config).eval()
    model.save_pretrained(path)
    shutil.copytree(tokenizer_dir, path, dirs_exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """GPT-2-shaped (LayerNorm, GELU MLP, learned positions): 4 layers, 4 heads, d_model 64."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=4, n_embd=64, n_head=4, n_inner=256, vocab_size=512,
                        n_positions=256, bos_token_id=0, eos_token_id=0)
    return _save_tiny(config, GPT2LMHeadModel, tiny_tokenizer_dir, tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """Llama-shaped like SmolLM2 (RMSNorm, gated SiLU MLP, rotary, grouped KV heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(num_hidden_layers=4, hidden_size=64, intermediate_size=128,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                         max_position_embeddings=256, bos_token_id=0, eos_token_id=0,
                         pad_token_id=0, tie_word_embeddings=False)
    return _save_tiny(config, LlamaForCausalLM, tiny_tokenizer_dir, tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def tiny_gemma3(tiny_tokenizer_dir, tmp_path_factory):
    """4 layers (sliding window 8, the last global), d_model 64, 4 heads on 1 KV head. Every norm
    weight is random: freshly initialised Gemma norms are the identity, which would hide a
    missing post-attention norm. Final logits are soft-capped (as Gemma 2's are; Gemma 3 270M's
    are not), so code that computes logits itself must cap them too."""
    import shutil

    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from services.subject_model import load_subject_model

    config = Gemma3TextConfig(
        num_hidden_layers=4, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, vocab_size=512, max_position_embeddings=256,
        sliding_window=8, layer_types=["sliding_attention"] * 3 + ["full_attention"],
        bos_token_id=0, eos_token_id=0, pad_token_id=0, final_logit_softcapping=3.0,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name.endswith("norm.weight"):
                weight.copy_(torch.randn_like(weight) * 0.5)
    path = tmp_path_factory.mktemp("gemma3")
    model.save_pretrained(path)
    shutil.copytree(tiny_tokenizer_dir, path, dirs_exist_ok=True)
    return load_subject_model(str(path), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_gpt2_dir):
    from services.subject_model import load_subject_model

    return load_subject_model(str(tiny_gpt2_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_dir):
    from services.subject_model import load_subject_model

    return load_subject_model(str(tiny_llama_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session", params=["gpt2", "llama"])
def tiny_model(request):
    """Each test using this runs on both architectures."""
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.fixture(scope="session")
def smollm2():
    """The real packaged model (dequantized once into the cache)."""
    from services.subject_model import load_subject_model

    return load_subject_model("smollm2-135m", device="cpu", dtype="float32")


@pytest.fixture
def offline_hub(monkeypatch):
    """The Hugging Face hub offline for this test. huggingface_hub and datasets read the
    environment once, at import, so their module flags are set too: otherwise a test of the
    offline error path waits for the unreachable hub to time out."""
    import datasets.config
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def tiny_campaign(model_dir: Path, corpus: Path, llm: str = "local", **overrides):
    """The campaign the state-machine, agent and worker tests run: two neurons of a tiny model,
    30 train and 30 test documents of 48 tokens, and every head worth explaining. Its test sets
    are the paper's (the first 6 test prompts) and zero-shot its one scorer, so the tests of the
    campaign machinery count items and calls the same way whatever the defaults; tests of
    balanced sampling, activity definitions and the probe ask for them."""
    from services.campaigns.config import CampaignConfig

    fields = dict(
        model=str(model_dir), neurons=["3:5", "3:17"], corpus=str(corpus), max_train_docs=30,
        max_test_docs=30, context_length=48, top_k=8, prompts_per_neuron=8, worth_range=(0.05, 0.95),
        test_prompts_per_head=6, test_sampling="first", scorers=["zero-shot"], explainer=llm, classifier=llm)
    return CampaignConfig(**{**fields, **overrides})
