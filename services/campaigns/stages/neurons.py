"""Stage ``neurons`` (docs/method.md step 1): the campaign's next-token neurons, or the random
baseline, or the neurons its config names."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.campaigns.records import StageItem, Writer, set_provenance
from services.runtime import Runtime
from services.store import Store
from services.store.models import Campaign, NeuronRow
from services.work import NeuronsWork, find_neurons


def plan(session: Session, campaign: Campaign) -> list[str]:
    return ["all"]


def compute(runtime: Runtime, store: Store, item: StageItem) -> Writer:
    config = item.config
    found = find_neurons(runtime, NeuronsWork(model=config.model, neurons=config.neurons, layers=config.layers,
                                              per_layer=config.per_layer, random=config.baseline == "random",
                                              seed=config.seed))

    def write(session: Session) -> None:
        session.add_all(NeuronRow(campaign_id=item.campaign_id, layer=n.layer, neuron=n.neuron,
                                  token=n.token, token_id=n.token_id, congruence=n.congruence)
                        for n in found.neurons)
        set_provenance(session, item.campaign_id, model=found.model)

    return write
