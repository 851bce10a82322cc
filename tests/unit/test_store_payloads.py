"""The store's JSON columns hold pydantic models (services.store.pydantic_json): a row loads its
model, the bytes written are the model's JSON dump exactly as a plain JSON column stored it (so
stores from before read back unchanged), and JSON that is not the model fails where it is loaded.
Real SQLite store."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import StatementError

from lookups import HeadScore
from services.campaigns.config import CampaignConfig
from services.campaigns.lifecycle import create_campaign
from services.schemas import ItemProgress
from services.store.models import Campaign, HeadRow, ScoreRow, WorkItem

CONFIG = CampaignConfig(corpus="docs.jsonl", neurons=["3:5"], worth_range=(0.1, 0.9), llm_prices={"m": (1.0, 2.0)})
SCORE = HeadScore(neuron="3:5", head="1.2", score=0.5, tp=3, fn=1, tn=2, fp=2, unparseable=0, ci95=(0.25, 0.75))


def a_head(store) -> tuple[str, int]:
    campaign_id = create_campaign(store, CONFIG)
    with store.session() as session:
        head = HeadRow(campaign_id=campaign_id, layer=3, neuron=5, head_layer=1, head=2, active_fraction=0.5)
        session.add(head)
        session.flush()
        return campaign_id, head.id


def raw(store, sql: str) -> str:
    with store.engine.connect() as connection:
        return connection.execute(text(sql)).scalar_one()


def test_a_payload_is_stored_as_its_json_dump_and_loads_as_its_model(store):
    campaign_id, head_id = a_head(store)
    with store.session() as session:
        session.add(ScoreRow(campaign_id=campaign_id, head_id=head_id, scorer="zero-shot", control=False,
                             score=SCORE.score, payload=SCORE))
        session.add(WorkItem(campaign_id=campaign_id, stage="scan", key="train", queue="gpu", status="running"))
    assert raw(store, "SELECT progress IS NULL FROM work_items")  # no progress: SQL NULL, not JSON null
    progress = ItemProgress(unit="documents", done=5, total=10, tokens=50, elapsed_s=1.5)
    with store.session() as session:  # a Core update, as the progress reporter writes it
        session.execute(update(WorkItem).values(progress=progress))

    # What a plain JSON column held for model_dump(mode="json"): tuples as lists, keys in field order.
    assert raw(store, "SELECT payload FROM scores") == json.dumps(SCORE.model_dump(mode="json"))
    assert raw(store, "SELECT config FROM campaigns") == json.dumps(CONFIG.model_dump(mode="json"))
    assert raw(store, "SELECT progress FROM work_items") == json.dumps(progress.model_dump(mode="json"))
    with store.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        score = session.scalars(select(ScoreRow)).one().payload
        assert isinstance(campaign.config, CampaignConfig) and campaign.config == CONFIG
        assert campaign.config.worth_range == (0.1, 0.9) and campaign.config.llm_prices == {"m": (1.0, 2.0)}
        assert isinstance(score, HeadScore) and score == SCORE and score.ci95 == (0.25, 0.75)
        assert session.scalars(select(WorkItem.progress)).one() == progress


def raw_score(store, payload: str) -> str:
    """A score row of a new head whose payload is this JSON text, written past the ORM (as an
    older version, or a hand, would have written it); its campaign's id."""
    campaign_id, head_id = a_head(store)
    with store.engine.begin() as connection:
        connection.execute(text("INSERT INTO scores (campaign_id, head_id, scorer, control, score, payload) "
                                "VALUES (:c, :h, 'zero-shot', false, 0.5, :payload)"),
                           {"c": campaign_id, "h": head_id, "payload": payload})
    return campaign_id


def test_a_row_written_as_plain_json_before_reads_back_as_its_model(store):
    raw_score(store, json.dumps(SCORE.model_dump(mode="json")))
    with store.session() as session:
        assert session.scalars(select(ScoreRow.payload)).one() == SCORE


def test_json_that_is_not_the_columns_model_fails_on_load_naming_the_model(store):
    campaign_id = raw_score(store, json.dumps({"score": "high"}))
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE campaigns SET config = :config"), {"config": json.dumps({"top_k": 0})})
    with store.session() as session, pytest.raises(ValueError, match="(?s)not a valid HeadScore.*tp"):
        session.scalars(select(ScoreRow)).all()
    with store.session() as session, pytest.raises(ValueError, match="(?s)not a valid CampaignConfig.*corpus"):
        session.get(Campaign, campaign_id)


def test_a_payload_column_refuses_a_dict(store):
    """Every writer stores the model itself: a leftover dump would skip its validation."""
    campaign_id, head_id = a_head(store)
    with pytest.raises(StatementError, match="a HeadScore column was given a dict"), store.session() as session:
        session.add(ScoreRow(campaign_id=campaign_id, head_id=head_id, scorer="zero-shot", control=False,
                             score=0.5, payload=SCORE.model_dump(mode="json")))
