"""The real local backend: llama-cpp-python running the packaged SmolLM2-135M-Instruct GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lookups import ClassifyRequest, ExplainRequest, PromptTemplate, TestPrompt
from services.classify import classify
from services.explain import explain
from services.llm.client import LLMClient
from services.llm.registry import DEFAULT_JUDGE, create_backend, get_scorer, get_strategy, get_template
from services.settings import Settings

pytestmark = pytest.mark.slow

ONESHOT = get_strategy("oneshot")

HEAD = ExplainRequest(
    neuron="27:1263", head="20.4", token=" right",
    active_examples=["Turn left at the lights and then turn", "The answer you gave is exactly",
                     "You are absolutely"],
    inactive_examples=["She was born in the city and grew up", "Prices rose again in the"],
)
TESTS = [TestPrompt(text="Take the second road on the", active=True),
         TestPrompt(text="I think you are", active=True),
         TestPrompt(text="The committee met on Tuesday to discuss the", active=False)]


def short(template: PromptTemplate, tokens: int) -> PromptTemplate:
    return PromptTemplate(**{**template.model_dump(), "explain_max_tokens": tokens})


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> LLMClient:
    settings = Settings(cache_dir=tmp_path_factory.mktemp("llm"))
    return LLMClient(create_backend("local", {"n_ctx": 2048}), settings=settings)


def test_explain_and_classify_end_to_end(client):
    template = short(get_template("neo2024"), 16)
    (explanation,) = explain(client, ONESHOT, template, [HEAD])

    assert explanation.text.strip()
    assert 0 < explanation.call.output_tokens <= 16 and explanation.call.input_tokens > 100
    assert (explanation.backend, explanation.template_version) == ("local", template.version)

    head = classify(client, get_scorer("zero-shot"), template,
                    ClassifyRequest(explanation=explanation.text, token=" right", prompts=TESTS))
    assert len(head.results) == len(head.calls) == len(TESTS)
    assert all(call.output_tokens == 1 for call in head.calls)
    for result in head.results:  # restricted to the choices' first tokens: Yes or No by construction
        assert result.p_yes is not None and 0.0 <= result.p_yes <= 1.0
        assert (result.answer, result.raw) in {("yes", "Yes"), ("no", "No")}


def test_the_judge_answers_its_choice_with_the_larger_logit(client):
    """The constrained answer is the choice the unconstrained judge's first-token logits prefer,
    even where its free answer is neither (SmolLM2-135M often starts "The")."""
    from lookups import LLMRequest

    template = get_template("neo2024")
    prompts = [template.render_classifier(e, t.text + " right") for t in TESTS
               for e in ("The head is active on directions.", "Documents about law.")]
    free = [client.call(LLMRequest(prompt=p, max_tokens=1, logprobs=True)).completion for p in prompts]
    chosen = [client.call(LLMRequest(prompt=p, max_tokens=1, logprobs=True, choices=("Yes", "No"))).completion
              for p in prompts]

    for f, c in zip(free, chosen):
        assert c.text in {"Yes", "No"} and {"Yes", "No"} <= c.top_logprobs.keys()
        assert c.text == max(("Yes", "No"), key=lambda choice: c.top_logprobs[choice])
        assert f.top_logprobs.items() <= c.top_logprobs.items()  # the same logits, two tokens more
    assert any(f.text.strip() not in {"Yes", "No"} for f in free)


def test_a_looping_explanation_is_cut_before_it_repeats(tmp_path):
    """The default explainer, on this head, repeats a sentence of its answer until the token
    limit; decoding stops at the first repeated run of 8 words, drops it and says so, in the
    explanation and in the cached answer a rerun reads."""
    from plugins.backends.llama_chat import REPEAT_WORDS, repeat_start

    client = LLMClient(create_backend(DEFAULT_JUDGE, {"n_ctx": 2048}), settings=Settings(cache_dir=tmp_path))
    template = get_template("neo2024")
    (first,) = explain(client, ONESHOT, template, [HEAD])
    (again,) = explain(client, ONESHOT, template, [HEAD])

    assert first.cut == again.cut == f"began repeating a run of {REPEAT_WORDS} words; the repeat was dropped"
    assert again.call.cache_hit and again.text == first.text
    assert repeat_start(first.text) is None and len(first.text.split()) > REPEAT_WORDS
    assert first.call.output_tokens < template.explain_max_tokens


def test_rerun_costs_zero_new_tokens(client):
    template = short(get_template("neo2024"), 16)
    first = explain(client, ONESHOT, template, [HEAD])[0]
    again = explain(client, ONESHOT, template, [HEAD])[0]
    assert again.text == first.text
    assert again.call.cache_hit and again.call.input_tokens == again.call.output_tokens == 0


def test_shared_explanation_prefix_is_evaluated_once():
    """Prompts after the first only evaluate their own tokens; answers match a from-scratch run."""
    from langchain_core.messages import HumanMessage

    from plugins.backends.llama_chat import LlamaCppChat

    backend = create_backend("local", {"n_ctx": 2048})
    template = get_template("neo2024")
    explanation = "The head is active when the text gives directions or agrees with someone."
    prompts = [template.render_classifier(explanation, t.text + " right") for t in TESTS]

    def run(reuse: bool):
        chat = LlamaCppChat(model_path=backend.model, n_ctx=2048, max_tokens=1, logprobs=True,
                            reuse_prefix=reuse)
        return [chat.invoke([HumanMessage(content=p)]) for p in prompts]

    reused, scratch = run(True), run(False)
    for r, s in zip(reused[1:], scratch[1:]):
        assert r.response_metadata["prompt_tokens_evaluated"] < r.usage_metadata["input_tokens"] // 2
        assert s.response_metadata["prompt_tokens_evaluated"] == s.usage_metadata["input_tokens"]
    assert [m.content for m in reused] == [m.content for m in scratch]


@pytest.mark.parametrize("spec", ["local", DEFAULT_JUDGE])
def test_prompt_lookup_decodes_a_copied_sentence_in_a_few_passes_with_the_same_answer(spec):
    """Asked to repeat a sentence, the model copies it from the prompt: checking guesses looked
    up there gives the answer of one token per pass, in a fraction of the passes."""
    from langchain_core.messages import HumanMessage

    from plugins.backends.llama_chat import LlamaCppChat

    prompt = ("Repeat the following text exactly:\n\nThe river runs past the old mill, under the stone "
              "bridge and into the valley where the farmers grow wheat and barley every summer.")

    def run(draft_tokens: int):
        chat = LlamaCppChat(model_path=create_backend(spec).model, n_ctx=1024, max_tokens=60,
                            draft_tokens=draft_tokens)
        return chat.invoke([HumanMessage(content=prompt)])

    plain, guessed = run(0), run(10)
    tokens = plain.usage_metadata["output_tokens"]
    assert "stone bridge" in plain.content and guessed.content == plain.content
    assert guessed.usage_metadata["output_tokens"] == tokens
    assert plain.response_metadata["decode_passes"] >= tokens - 1
    assert guessed.response_metadata["decode_passes"] <= tokens // 3


def test_cli_explain_with_the_local_backend(tmp_path, monkeypatch, capsys):
    from api.cli import app
    from api.cli._common import run_guarded

    monkeypatch.setenv("LOOKUPS_CACHE_DIR", str(tmp_path))
    template = tmp_path / "brief.json"
    template.write_text(short(get_template("neo2024"), 12).model_dump_json())
    heads = tmp_path / "head_examples.json"
    heads.write_text(HEAD.model_dump_json())

    with pytest.raises(SystemExit) as done:
        run_guarded(app, ["explain", "--backend", "local", "-o", "n_ctx=2048", "--template", str(template),
                          "--input", str(heads), "--json"])
        raise SystemExit(0)
    (result,) = json.loads(capsys.readouterr().out)
    assert done.value.code == 0 and result["text"] and result["head"] == "20.4"
    assert result["template"] == "neo2024" and result["call"]["output_tokens"] <= 12


def test_smollm2_f16_is_an_f16_copy_of_the_packaged_weights(tmp_path, monkeypatch):
    """``local:smollm2-f16`` (the default judge) loads a copy made once in the cache that holds
    every packaged weight to F16 rounding (relative 2^-11); ``local`` loads the packaged file."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    from plugins.backends.gguf_files import packaged_gguf

    monkeypatch.setenv("LOOKUPS_CACHE_DIR", str(tmp_path))
    assert Path(create_backend("local").model) == packaged_gguf().resolve()
    copy = Path(create_backend(DEFAULT_JUDGE).model)
    made = copy.stat().st_mtime_ns
    assert copy.parent == (tmp_path / "gguf").resolve() and copy.name.endswith(".F16.gguf")
    assert Path(create_backend("local:smollm2-f16").model) == copy and copy.stat().st_mtime_ns == made
    assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # no staging file left

    source = {t.name: t for t in GGUFReader(packaged_gguf()).tensors}
    converted = {t.name: t for t in GGUFReader(copy).tensors}
    assert converted.keys() == source.keys()
    assert any(t.tensor_type == GGMLQuantizationType.Q4_1 for t in source.values())
    for name, tensor in converted.items():
        assert tensor.tensor_type in {GGMLQuantizationType.F16, GGMLQuantizationType.F32}, name
        original = dequantize(source[name].data, source[name].tensor_type)
        np.testing.assert_allclose(dequantize(tensor.data, tensor.tensor_type), original,
                                   rtol=2**-11, atol=2**-24, err_msg=name)
