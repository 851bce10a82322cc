"""Backends and templates come from plugins; spec strings, options and template files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lookups import MissingApiKeyError, TemplateError, UnknownBackendError, get_plugin_manager, hookimpl
from services.llm.registry import create_backend, get_template, list_backends, list_templates

METHOD = Path(__file__).resolve().parents[3] / "docs" / "method.md"  # the paper's prompts, documented


class EchoPlugin:
    """A third-party plugin: one backend and one template, registered like any installed package."""

    from lookups import Backend
    from plugins.templates import NEO2024

    class Echo(Backend):
        name = "echo"
        default_model = "echo-1"

    template = NEO2024.model_copy(update={"name": "terse", "classifier": "{explanation}? {example}"})

    @hookimpl
    def register_backends(self, register):
        register(self.Echo)

    @hookimpl
    def register_templates(self, register):
        register(self.template)


@pytest.fixture
def echo_plugin():
    pm = get_plugin_manager()
    plugin = EchoPlugin()
    pm.register(plugin, name="echo-plugin")
    yield plugin
    pm.unregister(plugin)


def test_builtins_are_listed_from_entry_points_with_capabilities():
    backends = {b.name: b for b in list_backends()}
    assert {"openai", "anthropic", "openai-compatible", "local"} <= set(backends)
    assert all(b.package == "lookups" for b in backends.values())
    assert backends["local"].logprobs and not backends["anthropic"].logprobs
    assert backends["openai"].key_env_var == "OPENAI_API_KEY"
    templates = {t.name: t for t in list_templates()}
    assert {"neo2024", "neo2024-v1"} <= set(templates)
    assert templates["neo2024"].version != templates["neo2024-v1"].version


def test_a_third_party_plugin_adds_a_backend_and_a_template(echo_plugin):
    assert "echo" in {b.name for b in list_backends()}
    assert create_backend("echo").model == "echo-1"
    assert get_template("terse").render_classifier("Fires on cats", "a cat") == "Fires on cats? a cat"


@pytest.mark.parametrize(("spec", "model", "url"), [
    ("openai:gpt-4-1106-preview", "gpt-4-1106-preview", None),
    ("openai-compatible:http://host:8000/v1:Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B", "http://host:8000/v1"),
    ("openai-compatible:http://localhost:11434/v1:llama3:8b", "llama3:8b", "http://localhost:11434/v1"),
])
def test_spec_strings(spec, model, url, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-whatever")
    backend = create_backend(spec)
    assert backend.model == model
    assert backend.endpoint == url


@pytest.mark.parametrize(("spec", "options", "message"), [
    ("gemini:pro", None, "unknown backend 'gemini'"),
    ("openai-compatible:host:8000", None, "base URL with a path"),
    ("openai:gpt-4o", {"tempreature": 0}, "tempreature"),
    ("local:/nowhere/model.gguf", None, "no GGUF file"),
])
def test_bad_specs_and_options_are_clear_errors(spec, options, message):
    with pytest.raises(UnknownBackendError, match=message):
        create_backend(spec, options)


@pytest.mark.parametrize(("spec", "var"), [("openai:gpt-4o", "OPENAI_API_KEY"),
                                           ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY")])
def test_missing_key_names_the_variable(spec, var, monkeypatch):
    monkeypatch.delenv(var, raising=False)
    with pytest.raises(MissingApiKeyError, match=var):
        create_backend(spec).chat_model(max_tokens=1, logprobs=False)


def _method_block(heading: str) -> str:
    text = METHOD.read_text(encoding="utf-8")
    start = text.index("```", text.index(heading)) + 3
    block = text[text.index("\n", start) + 1: text.index("```", start)]
    return block


def test_neo2024_prompts_are_the_papers_verbatim():
    template = get_template("neo2024")
    explainer = template.explainer.format(token="{token}", active_examples="*{example}",
                                          inactive_examples="*{example}")
    classifier = template.classifier.format(explanation="{explanation, newlines replaced by spaces}",
                                            example="{test prompt + token}")
    assert explainer == _method_block("### Explainer prompt (step 5)").rstrip("\n")
    assert classifier == _method_block("### Classifier prompt (step 7)").rstrip("\n")


def test_rendering_appends_the_token_and_flattens_the_explanation():
    template = get_template("neo2024")
    prompt = template.render_explainer(" right", ["turn to the", "go"], ["left or"])
    assert '*turn to the right\n*go right\n"""' in prompt and "*left or right" in prompt
    classifier = template.render_classifier("Line one.\nLine two.", "some text right")
    assert classifier.startswith("Line one. Line two.\n")


def test_template_from_file_and_its_version(tmp_path):
    base = get_template("neo2024")
    path = tmp_path / "mine.toml"
    path.write_text(f"explainer = '''{base.explainer}'''\nclassifier = '''{base.classifier}'''\n")
    mine = get_template(str(path))
    assert mine.name == "mine"
    assert mine.version == base.version  # same wording, same version, whatever the name
    path.write_text(f"explainer = '''{base.explainer} Be brief.'''\nclassifier = '''{base.classifier}'''\n")
    assert get_template(str(path)).version != base.version


@pytest.mark.parametrize("content", ['explainer = "{tokn}"\nclassifier = "{explanation}"', "not toml ="])
def test_bad_template_files_are_clear_errors(tmp_path, content):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(TemplateError, match=re.escape(str(path))):
        get_template(str(path))


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(TemplateError, match="neo2024"):
        get_template("neo2025")


def test_preload_imports_only_the_named_backends_client_library_in_the_background():
    """A fresh process: the first llm item would otherwise import langchain_openai (seconds)."""
    import subprocess
    import sys

    script = ("import sys\nfrom services.llm.registry import preload_backends\n"
              "assert 'langchain_openai' not in sys.modules\n"
              "preload_backends(['openai-compatible:http://127.0.0.1:9/v1:m']).join()\n"
              "print('langchain_openai' in sys.modules, 'langchain_anthropic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]
