"""The public package ``lookups`` (the plugin contract) is pinned: a plugin written against it keeps working
until someone changes this list on purpose."""

import importlib
import re

import lookups

SURFACE = {
    # hooks and their manager
    "LookupsHooks", "get_plugin_manager", "hookimpl",
    # corpus sources
    "CorpusSource", "Document",
    # LLM backends
    "Backend", "BackendDefaults", "BatchPoll", "BatchResult", "CallRecord", "Completion", "LLMRequest", "share_prefix",
    "completion_from_message", "first_token_logprobs", "retry_after_seconds",
    # prompt templates
    "PromptTemplate", "template_from_file",
    # explainer strategies
    "AgentRound", "ExplainRequest", "ExplainerStrategy", "HeadExample", "Probe", "ProbeMeasurement",
    "ProgramExplanation", "RoundEvaluation", "SourceRead",
    # programs: the sandbox that runs them
    "ProgramAnswer", "balanced_accuracy", "check_program", "run_program",
    # scorers
    "Answer", "Classification", "ClassifyRequest", "HeadClassification", "HeadScore", "Judgement", "Scorer",
    "TestPrompt", "head_score", "rank_auc",
    # errors
    "BackendError", "BackendUnavailableError", "BudgetExceededError", "CorpusError", "InvalidInputError",
    "LookupsError", "MissingApiKeyError", "ModelLoadError", "TemplateError", "UnknownBackendError",
    "UnknownPluginError", "redact",
}


def test_lookups_exports_exactly_its_surface():
    assert set(lookups.__all__) == SURFACE
    assert len(lookups.__all__) == len(SURFACE), "a name is listed twice in lookups.__all__"
    for name in SURFACE:
        assert getattr(lookups, name) is not None


def test_every_hook_has_a_base_lookups_exports():
    """Each hook's docstring names the contract type a plugin registers."""
    hooks = [name for name in dir(lookups.LookupsHooks) if name.startswith("register_")]
    assert hooks, "no hook specifications"
    for name in hooks:
        doc = getattr(lookups.LookupsHooks, name).__doc__
        named = re.findall(r"``lookups\.(\w+)``", doc)
        assert named, f"{name}: its docstring names no contract type"
        for type_name in named:
            assert type_name in SURFACE, f"{name} names lookups.{type_name}, which is not exported"


def test_every_built_in_plugin_implements_only_declared_hooks():
    """pluggy rejects unknown hook names only when validating; do it for every built-in."""
    pm = lookups.get_plugin_manager()
    pm.check_pending()
    plugins = {name for name, _ in pm.list_name_plugin()}
    for module in ("plugins.corpora", "plugins.templates", "plugins.backends.openai_backends",
                   "plugins.backends.anthropic_backend", "plugins.backends.local_backend",
                   "plugins.explainers.oneshot", "plugins.explainers.contrastive", "plugins.explainers.agent",
                   "plugins.explainers.program", "plugins.scorers.zero_shot", "plugins.scorers.detection",
                   "plugins.scorers.causal", "plugins.scorers.program"):
        assert pm.is_registered(importlib.import_module(module)), f"{module} is not registered"
    assert plugins
