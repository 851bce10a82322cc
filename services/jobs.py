"""Single jobs (one scan, attribution, explanation or classification) outside any campaign:
stored with their request, run by a worker, read back with their result."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.classify import ClassifyRequest, HeadClassification
from services.explain import Explanation, ExplainRequest
from services.heads import NeuronAttribution
from services.schemas import NeuronContexts
from services.store import Store
from services.store.models import JobRow

JobKind = Literal["scan", "attribute", "explain", "classify"]
QUEUE: dict[str, Literal["gpu", "llm"]] = {"scan": "gpu", "attribute": "gpu", "explain": "llm", "classify": "llm"}
NeuronStr = Annotated[str, Field(pattern=r"^\d+:\d+$", examples=["27:1263"])]


class ScanJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="smollm2-135m", min_length=1, max_length=500)
    corpus: str = Field(min_length=1, max_length=500, description="File, folder or hf:NAME[:SPLIT].")
    neurons: list[NeuronStr] = Field(min_length=1, max_length=1000)
    split: Literal["train", "test"] = "train"
    max_docs: int | None = Field(default=None, ge=1, le=1_000_000)
    top_k: int = Field(default=30, ge=1, le=1000)
    context_length: int = Field(default=1024, ge=2, le=131_072)


class AttributeJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="smollm2-135m", min_length=1, max_length=500)
    neuron: NeuronStr
    prompts: list[Annotated[str, Field(min_length=1, max_length=20_000)]] = Field(
        min_length=1, max_length=1000, description="Texts whose last token is the neuron's firing position.")
    active_stds: float = Field(default=2.0, gt=0, le=100)
    worth_range: tuple[float, float] = (0.25, 0.75)


class ExplainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str = Field(default="local", min_length=1, max_length=500)
    template: str = Field(default="neo2024", min_length=1, max_length=200)
    strategy: str = Field(default="oneshot", min_length=1, max_length=100)
    request: ExplainRequest


class ClassifyJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str = Field(default="local", min_length=1, max_length=500)
    template: str = Field(default="neo2024", min_length=1, max_length=200)
    scorer: str = Field(default="zero-shot", min_length=1, max_length=100)
    request: ClassifyRequest


class ScanResult(BaseModel):
    contexts: list[NeuronContexts]


JOB_REQUESTS: dict[str, type[BaseModel]] = {
    "scan": ScanJob, "attribute": AttributeJob, "explain": ExplainJob, "classify": ClassifyJob}
JobResult = ScanResult | NeuronAttribution | Explanation | HeadClassification


def create_job(store: Store, kind: JobKind, request: BaseModel) -> str:
    job_id = uuid.uuid4().hex
    with store.session() as session:
        session.add(JobRow(id=job_id, kind=kind, status="pending", request=request.model_dump(mode="json")))
    return job_id


def _compute(runtime, kind: str, request) -> BaseModel:
    from services.schemas import NeuronRef

    if kind == "scan":
        from services.corpus import load_corpus, split_documents
        from services.scan import scan_corpus

        documents = split_documents(load_corpus(request.corpus), request.split)[: request.max_docs]
        return ScanResult(contexts=scan_corpus(
            runtime.model(request.model), [NeuronRef.parse(n) for n in request.neurons], documents,
            top_k=request.top_k, context_length=request.context_length))
    if kind == "attribute":
        from services.heads import Prompt, attribute_neuron

        model = runtime.model(request.model)
        prompts = [Prompt(text=t, tokens=model.tokenizer(t, add_special_tokens=False)["input_ids"])
                   for t in request.prompts]
        return attribute_neuron(model, NeuronRef.parse(request.neuron), prompts,
                                active_stds=request.active_stds, worth_range=request.worth_range)
    from services.llm.registry import get_scorer, get_strategy, get_template

    client = runtime.llm(request.backend, None)
    if kind == "explain":
        from services.explain import explain

        return explain(client, get_strategy(request.strategy), get_template(request.template),
                       [request.request])[0]
    from services.classify import classify

    return classify(client, get_scorer(request.scorer), get_template(request.template), request.request)


def run_job(store: Store, runtime, job_id: str) -> str:
    """Run a job once: a finished job is not run again (a redelivered message is harmless)."""
    with store.session() as session:
        job = session.get(JobRow, job_id)
        if job is None or job.status in ("done", "failed"):
            return "skipped"
        job.status = "running"
        kind, request = job.kind, JOB_REQUESTS[job.kind].model_validate(job.request)
    try:
        result = _compute(runtime, kind, request)
    except Exception as error:
        with store.session() as session:
            job = session.get(JobRow, job_id)
            job.status, job.error = "failed", f"{type(error).__name__}: {error}"[:4000]
        return "failed"
    with store.session() as session:
        job = session.get(JobRow, job_id)
        job.status, job.result, job.error = "done", result.model_dump(mode="json"), None
    return "done"
