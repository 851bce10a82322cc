"""lookups, the public package: the plugin contract, everything a plugin implements or receives, in one place.

Plugins (the built-ins in ``plugins/`` and third-party distributions alike) import only this
module. A plugin module registers itself under the ``lookups`` entry-point group and implements
one or more hooks with ``@hookimpl``; each hook gets a ``register`` callback:

- ``register_corpus_sources``: ``CorpusSource`` objects yielding ``Document``s;
- ``register_backends``: ``Backend`` subclasses (an LLM behind a langchain chat model);
- ``register_templates``: ``PromptTemplate`` instances;
- ``register_explainers``: ``ExplainerStrategy`` instances (``ExplainRequest`` → ``LLMRequest``);
- ``register_scorers``: ``Scorer`` instances (``ClassifyRequest`` → judgements → ``HeadScore``).

Services depend on this module too; it depends on nothing else in the repository.
"""

from lookups.backend import (
    Backend,
    BackendDefaults,
    completion_from_message,
    first_token_logprobs,
    retry_after_seconds,
)
from lookups.corpus import CorpusSource, Document
from lookups.errors import (
    BackendError,
    BackendUnavailableError,
    BudgetExceededError,
    CorpusError,
    InvalidInputError,
    LookupsError,
    MissingApiKeyError,
    ModelLoadError,
    TemplateError,
    UnknownBackendError,
    UnknownPluginError,
    redact,
)
from lookups.explainers import (
    AgentRound,
    ExplainerStrategy,
    ExplainRequest,
    HeadExample,
    Probe,
    ProbeMeasurement,
    ProgramExplanation,
    RoundEvaluation,
    SourceRead,
)
from lookups.hooks import LookupsHooks, get_plugin_manager, hookimpl
from lookups.llm import BatchPoll, BatchResult, CallRecord, Completion, LLMRequest, share_prefix
from lookups.sandbox import ProgramAnswer, balanced_accuracy, check_program, run_program
from lookups.scorers import (
    Answer,
    Classification,
    ClassifyRequest,
    HeadClassification,
    HeadScore,
    Judgement,
    Scorer,
    TestPrompt,
    head_score,
    rank_auc,
)
from lookups.templates import PromptTemplate, template_from_file

__all__ = [
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
    "Answer", "Classification", "ClassifyRequest", "HeadClassification", "HeadScore", "Judgement",
    "Scorer", "TestPrompt", "head_score", "rank_auc",
    # errors
    "BackendError", "BackendUnavailableError", "BudgetExceededError", "CorpusError",
    "InvalidInputError", "LookupsError", "MissingApiKeyError", "ModelLoadError", "TemplateError",
    "UnknownBackendError", "UnknownPluginError", "redact",
]
