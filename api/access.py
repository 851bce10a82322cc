"""Who may ask the REST API for what. One pure function per rule; the routes apply them.

- Principals: each bearer token is a principal (``LOOKUPS_API_PRINCIPALS`` name -> token; each
  ``LOOKUPS_API_TOKENS`` entry is an admin named token-1, token-2, ...). A principal sees the
  campaigns and jobs it submitted; admins see all, including those with no owner.
- Paths and URLs a request may name: corpora under ``LOOKUPS_CORPUS_ROOTS`` or ``hf:`` dataset
  ids, never a ``datasets`` packaged builder (``hf:text`` reads the worker's folder);
  subject-model checkpoints and ``local:/path.gguf`` backends under ``LOOKUPS_MODEL_ROOTS``
  (packaged and hub names are always fine; nothing relative to a worker's folder); backend URLs
  under a prefix in ``LOOKUPS_ALLOWED_BACKEND_URLS``; prompt templates by registered name only.
  Nothing configured means no local paths and no URLs.
- A campaign's size, neurons x documents, under ``LOOKUPS_API_MAX_CAMPAIGN_SIZE``.
- Numbers finite everywhere in a request (NaN, Infinity and 1e999 are refused), and prices only
  for models the operator's ``LOOKUPS_LLM_PRICES`` does not price.

The CLI on the machine itself runs the same requests without these limits.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.settings import Settings

# A Hugging Face repo id: NAME or OWNER/NAME (no path traversal, no absolute path).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?", re.ASCII)
# How the openai-compatible backend reads ``URL:MODEL`` (plugins/backends/openai_backends.py).
URL_AND_MODEL = re.compile(r"^(https?://[^/\s]+/[^:\s]*):(.+)$")
DEFAULT_LAYER_COUNT = 3  # services.neurons.default_layers: the model's last three layers

CORPUS_FIELDS = ("corpus",)
MODEL_FIELDS = ("model",)
BACKEND_FIELDS = ("backend", "explainer", "classifier")
TEMPLATE_FIELDS = ("template", "explainer_template", "classifier_template")

Problems = list[tuple[str, str]]  # (field, problem)


# ---------------------------------------------------------------- principals


@dataclass(frozen=True)
class Principal:
    """Who sent a request. ``name`` None: development mode without tokens (an admin whose
    submissions have no owner)."""

    name: str | None
    admin: bool = False


def token_table(settings: Settings) -> list[tuple[str, Principal]]:
    """(token, principal) for every configured bearer token."""
    table = [(token, Principal(f"token-{i}", admin=True)) for i, token in enumerate(settings.api_tokens, start=1)]
    table += [(token, Principal(name, admin=name in settings.api_admins))
              for name, token in settings.api_principals.items()]
    return table


def principal_for(token: str, table: Sequence[tuple[str, Principal]]) -> Principal | None:
    """The principal whose token this is; every token is compared, in constant time each."""
    found = None
    for known, principal in table:
        if secrets.compare_digest(token.encode(), known.encode()):
            found = principal
    return found


def visible(owner: str | None, principal: Principal) -> bool:
    """A campaign or job is the business of its owner and of admins (alone, when it has no owner)."""
    return principal.admin or (owner is not None and owner == principal.name)


# ---------------------------------------------------------------- paths and URLs


def _is_hub_id(name: str) -> bool:
    return bool(HUB_ID.fullmatch(name)) and ".." not in name and not Path(name).exists()


def inside_roots(path: str, roots: Sequence[Path]) -> bool:
    """``path`` is absolute and, symlinks followed, inside one of ``roots``."""
    target = Path(path)
    if not target.is_absolute():
        return False
    try:
        resolved = target.resolve()
        return any(resolved.is_relative_to(root.resolve()) for root in roots)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return False


def _local_path(path: str, roots: Sequence[Path], setting: str, what: str) -> str | None:
    if not Path(path).is_absolute():
        return f"{what} paths must be absolute through the API, under {setting}"
    if not roots:
        return f"local {what} paths are refused through the API: {setting} is not set"
    if not inside_roots(path, roots):
        return f"{path!r} is not under {setting} ({', '.join(str(r) for r in roots)})"
    return None


def check_corpus(spec: str, roots: Sequence[Path], builders: Collection[str] = ()) -> str | None:
    """``hf:OWNER/NAME[:CONFIG][?OPTIONS]``, or an absolute file or folder under the corpus roots;
    never one of the ``datasets`` packaged ``builders``, which read local files."""
    if spec.startswith("hf:"):
        name = spec.removeprefix("hf:").partition("?")[0].partition(":")[0]
        if Path(name).is_absolute():  # a dataset folder, read by datasets.load_dataset
            return _local_path(name, roots, "LOOKUPS_CORPUS_ROOTS", "corpus")
        if name.lower() in builders:
            return (f"{name!r} is a packaged datasets builder, which reads local files; through the API an hf: "
                    "corpus is a Hugging Face dataset id (NAME or OWNER/NAME)")
        if not _is_hub_id(name):
            return f"{name!r} is not a Hugging Face dataset id (NAME or OWNER/NAME)"
        return None
    if not Path(spec).is_absolute():
        return ("through the API a corpus is hf:OWNER/NAME[:CONFIG][?OPTIONS] or an absolute path under "
                "LOOKUPS_CORPUS_ROOTS")
    return _local_path(spec, roots, "LOOKUPS_CORPUS_ROOTS", "corpus")


def check_model(name: str, roots: Sequence[Path], packaged: Collection[str]) -> str | None:
    """A packaged model, a hub id, or an absolute checkpoint folder under the model roots."""
    if name in packaged or _is_hub_id(name):
        return None
    if Path(name).is_absolute():
        return _local_path(name, roots, "LOOKUPS_MODEL_ROOTS", "model")
    return ("through the API a model is a packaged name, a Hugging Face id (NAME or OWNER/NAME) or an "
            "absolute checkpoint folder under LOOKUPS_MODEL_ROOTS")


def check_url(url: str, allowed: Sequence[str]) -> str | None:
    """``url`` is under one of the ``allowed`` prefixes: same scheme, host and port, and its path
    at or below the prefix's (whole segments: /v1 allows /v1/x, not /v10)."""
    if not allowed:
        return "backend URLs are refused through the API: LOOKUPS_ALLOWED_BACKEND_URLS is not set"
    parts = _url(url)
    if parts is None:
        return f"{url!r} is not a plain http(s) URL (no credentials, query, fragment, or . and .. segments)"
    scheme, host, port, path = parts
    for prefix in allowed:
        known = _url(prefix)
        if known is None or known[:3] != (scheme, host, port):
            continue
        base = known[3].rstrip("/")
        if not base or path == base or path.startswith(base + "/"):
            return None
    return f"{url!r} is not under LOOKUPS_ALLOWED_BACKEND_URLS"


def _url(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of a URL with nothing a server and this check could read
    differently, else None."""
    if any(c.isspace() or c == "\\" for c in url) or "%2e" in url.lower():
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None
            or parts.password is not None or parts.query or parts.fragment or url.endswith(("?", "#"))):
        return None
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80), parts.path


def check_backend(spec: str, model_roots: Sequence[Path], allowed_urls: Sequence[str],
                  local_models: Collection[str] = ("",)) -> str | None:
    """``local`` with a packaged model (``local_models``, "" the default) or ``local:/path.gguf``
    under the model roots; a URL in a spec (``openai-compatible:URL:MODEL``) under an allowed
    prefix. Other specs name hosted models and are fine."""
    name, _, target = spec.strip().partition(":")
    if name == "local":
        if target in local_models:
            return None
        if not Path(target).is_absolute():  # never resolved against a worker's folder
            return (f"through the API a local backend is local, local:NAME with a packaged model "
                    f"({', '.join(sorted(filter(None, local_models)))}), or local:/path.gguf under LOOKUPS_MODEL_ROOTS")
        return _local_path(target, model_roots, "LOOKUPS_MODEL_ROOTS", "GGUF model")
    if name == "openai-compatible" or "://" in target:
        match = URL_AND_MODEL.match(target)
        return check_url(match.group(1) if match else target, allowed_urls)
    return None


def check_template(spec: str, registered: Collection[str]) -> str | None:
    """Templates by registered name; template files are read by the CLI only."""
    if spec in registered:
        return None
    return "through the API a template is a registered name (GET /v1/templates); template files are CLI-only"


def check_prices(prices: Mapping[str, Any], operator_priced: Collection[str]) -> str | None:
    """A request may price models the operator does not; never replace (or lower) the operator's."""
    priced = sorted(set(prices) & set(operator_priced))
    if priced:
        return (f"the operator prices {', '.join(map(repr, priced))} (LOOKUPS_LLM_PRICES); a request may only "
                "price models the operator does not")
    return None


def non_finite(value: Any, path: tuple[str, ...] = ()) -> Problems:
    """Every NaN or infinite number anywhere in a request body, by its dotted path."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(".".join(path), "must be a finite number (no NaN or Infinity)")]
    if isinstance(value, Mapping):
        return [problem for key, item in value.items() for problem in non_finite(item, (*path, str(key)))]
    if isinstance(value, list | tuple):
        return [problem for i, item in enumerate(value) for problem in non_finite(item, (*path, str(i)))]
    return []


def check_campaign_size(*, neurons: Sequence[str] | None, layers: Sequence[int] | None, per_layer: int,
                        max_train_docs: int | None, max_test_docs: int | None, cap: int | None) -> Problems:
    """neurons x documents at most ``cap``: neurons are the explicit ones, or layers x per_layer
    (three layers by default); documents are max_train_docs + max_test_docs, both required."""
    if cap is None:
        return []
    missing = [(field, f"required through the API: campaigns are capped at {cap} neurons x documents "
                       "(LOOKUPS_API_MAX_CAMPAIGN_SIZE)")
               for field, value in (("max_train_docs", max_train_docs), ("max_test_docs", max_test_docs))
               if value is None]
    if missing or max_train_docs is None or max_test_docs is None:
        return missing
    count = len(neurons) if neurons is not None else (len(layers) if layers else DEFAULT_LAYER_COUNT) * per_layer
    documents = max_train_docs + max_test_docs
    if count * documents > cap:
        return [("", f"{count} neurons x {documents} documents = {count * documents} is over the cap of {cap} "
                     "(LOOKUPS_API_MAX_CAMPAIGN_SIZE): fewer neurons (neurons, layers, per_layer) or documents "
                     "(max_train_docs, max_test_docs)")]
    return []


# ---------------------------------------------------------------- a request


@dataclass(frozen=True)
class Policy:
    corpus_roots: Sequence[Path] = ()
    model_roots: Sequence[Path] = ()
    allowed_urls: Sequence[str] = ()
    packaged_models: Collection[str] = ()
    templates: Collection[str] = ()
    corpus_builders: Collection[str] = ()
    local_models: Collection[str] = ("",)
    operator_priced: Collection[str] = ()


def policy(settings: Settings, packaged_models: Collection[str], templates: Collection[str],
           corpus_builders: Collection[str], local_models: Collection[str]) -> Policy:
    return Policy(corpus_roots=tuple(settings.corpus_roots), model_roots=tuple(settings.model_roots),
                  allowed_urls=tuple(settings.allowed_backend_urls), packaged_models=packaged_models,
                  templates=templates, corpus_builders=corpus_builders, local_models=local_models,
                  operator_priced=tuple(settings.llm_prices))


def request_problems(body: Mapping[str, Any], rules: Policy) -> Problems:
    """Every field of a campaign config or job request that names something outside the policy:
    corpus, model, backend specs, templates, the base_url of any options object, prices the
    operator sets; and any number that is not finite."""
    problems: Problems = non_finite(body)
    for field, value in body.items():
        problem = None
        if isinstance(value, str) and field in CORPUS_FIELDS:
            problem = check_corpus(value, rules.corpus_roots, rules.corpus_builders)
        elif isinstance(value, str) and field in MODEL_FIELDS:
            problem = check_model(value, rules.model_roots, rules.packaged_models)
        elif isinstance(value, str) and field in BACKEND_FIELDS:
            problem = check_backend(value, rules.model_roots, rules.allowed_urls, rules.local_models)
        elif isinstance(value, str) and field in TEMPLATE_FIELDS:
            problem = check_template(value, rules.templates)
        elif isinstance(value, Mapping) and field == "llm_prices":
            problem = check_prices(value, rules.operator_priced)
        elif isinstance(value, Mapping) and value.get("base_url") is not None:
            url_problem = check_url(str(value["base_url"]), rules.allowed_urls)
            if url_problem:
                problems.append((f"{field}.base_url", url_problem))
        if problem:
            problems.append((field, problem))
    return problems
