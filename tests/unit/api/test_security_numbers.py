"""Issue 24, numbers and prices, against the real app and a real SQLite store: NaN, Infinity and
1e999 are refused in campaign and job fields (nested ones too) instead of being stored as JSON
the database calls malformed; campaign fields have the bounds of the matching job fields; a
request may price models the operator does not, never replace or lower the operator's, never
below zero."""

from __future__ import annotations

import pytest

from tests.unit.api.conftest import auth, fields
from tests.unit.api.test_access_api import CONFIG, EXPLAIN
from tests.unit.api.test_security_paths import stored

CONTEXTS = '[{"neuron": {"layer": 3, "index": 5}, "hits": [{"doc_id": "d", "position": 1, "activation": %s}]}]'


def post(client, path: str, body: str):
    return client.post(path, content=body, headers={**auth("alice"), "Content-Type": "application/json"})


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_naming_the_field(client_for, store, number):
    client = client_for()
    campaign = '{"corpus": "hf:a/b", "neurons": ["3:5"], %s}'
    for given, field in ((f'"test_fraction": {number}', "body.test_fraction"),
                         (f'"active_stds": {number}', "body.active_stds"),
                         (f'"budget_usd": {number}', "body.budget_usd"),
                         (f'"worth_range": [0.1, {number}]', "body.worth_range.1"),
                         (f'"llm_prices": {{"my-model": [1, {number}]}}', "body.llm_prices.my-model.1")):
        refused = fields(post(client, "/v1/campaigns", campaign % given))
        assert field in refused and "finite number" in refused[field], (given, refused)
    jobs = (("truncate", '{"corpus": "hf:a/b", "contexts": %s}' % (CONTEXTS % number),
             "body.contexts.0.hits.0.activation"),
            ("truncate", '{"corpus": "hf:a/b", "contexts": %s, "keep_fraction": %s}' % (CONTEXTS % 1, number),
             "body.keep_fraction"),
            ("classify", '{"request": {"explanation": "e", "prompts": [{"text": "a", "effect": %s}]}}' % number,
             "body.request.prompts.0.effect"),
            ("explain", '{"request": {"token": "t", "active_examples": ["a"]}, "budget_usd": %s}' % number,
             "body.budget_usd"))
    for kind, body, field in jobs:
        refused = fields(post(client, f"/v1/jobs/{kind}", body))
        assert field in refused and "finite number" in refused[field], (kind, refused)
    assert stored(store) == (0, 0)


def test_a_stored_config_round_trips(client_for):
    client = client_for()
    config = {**CONFIG, "budget_usd": 2.5, "worth_range": [0.1, 0.9], "llm_prices": {"my-model": [1.5, 3.0]},
              "explainer": "openai:my-model", "classifier": "local"}
    accepted = client.post("/v1/campaigns", json=config, headers=auth("alice"))
    assert accepted.status_code == 202, accepted.text
    shown = client.get(f"/v1/campaigns/{accepted.json()['id']}", headers=auth("alice")).json()["config"]
    assert {key: shown[key] for key in config} == config


# (campaign field, job kind, job field): the same quantity, so the same bounds
SAME = [("per_layer", "neurons", "per_layer"), ("layers", "neurons", "layers"), ("seed", "neurons", "seed"),
        ("neurons", "scan", "neurons"), ("top_k", "scan", "top_k"), ("context_length", "scan", "context_length"),
        ("test_fraction", "scan", "test_fraction"), ("max_train_docs", "scan", "max_docs"),
        ("max_test_docs", "scan", "max_docs"), ("corpus", "scan", "corpus"), ("model", "scan", "model"),
        ("test_from_id", "scan", "test_from_id"), ("keep_fraction", "truncate", "keep_fraction"),
        ("max_prompt_tokens", "truncate", "max_prompt_tokens"),
        ("prompts_per_neuron", "truncate", "prompts_per_neuron"), ("active_stds", "attribute", "active_stds"),
        ("explainer", "explain", "backend"), ("explainer_template", "explain", "template"),
        ("budget_usd", "explain", "budget_usd"), ("llm_prices", "explain", "llm_prices")]
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems",
          "maxItems", "maxProperties")


def bounds(schema: dict) -> dict:
    """The bounds of a field's JSON schema, its items' and values' included, None unions opened."""
    found = {key: schema[key] for key in BOUNDS if key in schema}
    for option in schema.get("anyOf", []):
        found |= bounds(option)
    for part in ("items", "additionalProperties"):
        if isinstance(schema.get(part), dict):
            found |= {f"{part}.{key}": value for key, value in bounds(schema[part]).items()}
    for i, item in enumerate(schema.get("prefixItems", [])):
        found |= {f"{i}.{key}": value for key, value in bounds(item).items()}
    return found


def test_campaign_fields_are_bounded_like_the_matching_job_fields(client_for):
    from services.campaigns.config import CampaignConfig
    from services.work import WORK_KINDS

    campaign = CampaignConfig.model_json_schema()["properties"]
    for field, kind, job_field in SAME:
        job = WORK_KINDS[kind].request.model_json_schema()["properties"][job_field]
        given = bounds(campaign[field])
        assert given == bounds(job) and given, (field, given, bounds(job))

    client = client_for()
    for change, field in (({"top_k": 10**18}, "body.top_k"), ({"context_length": 10**15}, "body.context_length"),
                          ({"layers": [-100]}, "body.layers.0"), ({"layers": [10**6]}, "body.layers.0"),
                          ({"max_train_docs": 10**12}, "body.max_train_docs"), ({"seed": 10**30}, "body.seed"),
                          ({"prompts_per_neuron": 10**9}, "body.prompts_per_neuron"),
                          ({"budget_usd": 1e12}, "body.budget_usd"), ({"scan_shard_docs": 64 * 10**9},
                                                                       "body.scan_shard_docs")):
        refused = fields(client.post("/v1/campaigns", json={**CONFIG, **change}, headers=auth("alice")))
        assert field in refused, (change, refused)


def test_prices_add_to_the_operators_never_replace_or_go_below_zero(client_for, store):
    client = client_for()  # the operator's table prices gpt-4o, among others
    for body, path in (({**CONFIG, "llm_prices": {"gpt-4o": [0, 0]}}, "/v1/campaigns"),
                       ({**EXPLAIN, "llm_prices": {"gpt-4o": [0, 0], "my-model": [1, 1]}}, "/v1/jobs/explain")):
        refused = fields(client.post(path, json=body, headers=auth("alice")))
        assert list(refused) == ["body.llm_prices"], refused
        assert "the operator prices 'gpt-4o' (LOOKUPS_LLM_PRICES)" in refused["body.llm_prices"]
    for negative in ([-2000, 0], [0, -1]):
        refused = fields(client.post("/v1/campaigns", json={**CONFIG, "llm_prices": {"my-model": negative}},
                                     headers=auth("alice")))
        assert any(field.startswith("body.llm_prices.my-model") for field in refused), refused
    assert stored(store) == (0, 0)
    priced = client.post("/v1/campaigns", headers=auth("alice"), json={
        **CONFIG, "explainer": "openai:my-model", "budget_usd": 1, "llm_prices": {"my-model": [1, 2]}})
    assert priced.status_code == 202, priced.text


def test_the_operators_prices_win_where_a_request_gives_its_own(tmp_path, monkeypatch):
    """Past the API (a config stored before, the CLI's --price): the worker's client charges the
    operator's price, and adds only the models the operator lacks."""
    from services.runtime import Runtime
    from services.settings import Settings

    monkeypatch.setenv("LOOKUPS_CACHE_DIR", str(tmp_path))
    runtime = Runtime(Settings(llm_prices={"gpt-4o": (2.5, 10.0)}, cache_dir=tmp_path))
    client = runtime.llm("openai-compatible:http://127.0.0.1:9/v1:gpt-4o", None,
                         {"gpt-4o": (0.0, 0.0), "my-model": (1.0, 2.0)})
    prices = client.settings.llm_prices  # LOOKUPS_LLM_PRICES adds to the built-in table
    assert prices["gpt-4o"] == (2.5, 10.0) and prices["my-model"] == (1.0, 2.0)
