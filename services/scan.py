"""Max-activating contexts (docs/method.md step 2): one pass over a corpus serves every neuron.

A document's activation for a neuron is the maximum over positions of ``hook_post``. The top K
documents per neuron are kept in a running buffer, so memory does not grow with the corpus.
Ties are broken by corpus order, so the result does not depend on the batch size.

Documents stream in chunks of ``SCAN_CHUNK_DOCS``, batched by length within a chunk. A scan of
documents ``a:b`` whose ``a`` is a multiple of the chunk size runs exactly the forward passes a
scan of the whole split runs there, so shards merged with ``merge_hits`` give exactly its top K.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import TYPE_CHECKING

from lookups import CorpusError, Document, InvalidInputError
from services.activations import encode_documents, length_batches, pad_id, pad_right, run_mlp_post
from services.schemas import ContextHit, NeuronContexts, NeuronRef

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

    from services.subject_model import SubjectModel

DEFAULT_TOKEN_BUDGET = 2048  # padded tokens per forward pass: big matmuls, bounded memory
DEFAULT_MAX_BATCH = 64
SCAN_CHUNK_DOCS = 64  # documents read and batched at a time; shards start at multiples of it
# Called after each chunk with the documents and tokens scanned so far.
ScanReport = Callable[[int, int], None]


def check_neurons(model: SubjectModel, neurons: Sequence[NeuronRef]) -> None:
    if not neurons:
        raise InvalidInputError("give at least one neuron")
    n_layers, d_mlp = model.info.n_layers, model.info.d_mlp
    for neuron in neurons:
        if not 0 <= neuron.layer < n_layers:
            raise InvalidInputError(
                f"neuron {neuron}: layer {neuron.layer} out of range 0..{n_layers - 1} "
                f"for model {model.info.name!r}"
            )
        if not 0 <= neuron.index < d_mlp:
            raise InvalidInputError(
                f"neuron {neuron}: index {neuron.index} out of range 0..{d_mlp - 1} "
                f"for model {model.info.name!r}"
            )


class TopK:
    """Running top-K documents per neuron: (value, doc index, position), best first."""

    def __init__(self, n_neurons: int, k: int):
        import torch

        self.k = k
        self.values = torch.full((n_neurons, 0), float("-inf"))
        self.docs = torch.zeros((n_neurons, 0), dtype=torch.long)
        self.positions = torch.zeros((n_neurons, 0), dtype=torch.long)

    def update(
        self,
        values: Float[Tensor, "neuron batch"],
        docs: Int[Tensor, " batch"],
        positions: Int[Tensor, "neuron batch"],
    ) -> None:
        import torch

        all_values = torch.cat([self.values, values.float().cpu()], dim=1)
        all_docs = torch.cat([self.docs, docs.cpu().expand(values.shape[0], -1)], dim=1)
        all_positions = torch.cat([self.positions, positions.cpu()], dim=1)
        # Stable sorts: by corpus order first, then by value, so ties go to the earlier document.
        order = all_docs.argsort(dim=1, stable=True)
        order = order.gather(1, all_values.gather(1, order).argsort(dim=1, descending=True, stable=True))
        keep = order[:, : self.k]
        self.values = all_values.gather(1, keep)
        self.docs = all_docs.gather(1, keep)
        self.positions = all_positions.gather(1, keep)


def scan_corpus(
    model: SubjectModel,
    neurons: Sequence[NeuronRef],
    documents: Iterable[Document],
    *,
    top_k: int = 30,
    context_length: int = 1024,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch: int = DEFAULT_MAX_BATCH,
    chunk_docs: int = SCAN_CHUNK_DOCS,
    total: int | None = None,
    progress: bool = False,
    report: ScanReport | None = None,
) -> list[NeuronContexts]:
    """Top ``top_k`` documents of each neuron over ``documents`` (streamed: only a chunk of
    texts is held at a time), in the order of ``neurons``. ``total``: the number of documents,
    for the progress bar."""
    import torch
    from tqdm.auto import tqdm

    check_neurons(model, neurons)
    if top_k < 1:
        raise InvalidInputError(f"top_k must be at least 1, got {top_k}")
    if context_length < 2:
        raise InvalidInputError(f"context_length must be at least 2, got {context_length}")
    if chunk_docs < 1:
        raise InvalidInputError(f"chunk_docs must be at least 1, got {chunk_docs}")

    device = model.device
    layers = sorted({n.layer for n in neurons})
    # Per layer: which columns of hook_post to read, and where they go in the neuron list.
    columns = {
        layer: torch.tensor([n.index for n in neurons if n.layer == layer], device=device)
        for layer in layers
    }
    slots = {layer: [i for i, n in enumerate(neurons) if n.layer == layer] for layer in layers}
    top = TopK(len(neurons), top_k)
    pad = pad_id(model.tokenizer)
    ids: list[str] = []
    tokens_done = 0
    stream = iter(documents)

    with tqdm(total=total, unit="doc", disable=not progress, desc="scan") as bar:
        while chunk := list(islice(stream, chunk_docs)):
            first = len(ids)
            ids.extend(d.id for d in chunk)
            token_lists = encode_documents(model.tokenizer, [d.text for d in chunk], context_length)
            for batch in length_batches([len(t) for t in token_lists], token_budget, max_batch):
                tokens, lengths = pad_right((token_lists[i] for i in batch), pad, device)
                is_pad = torch.arange(tokens.shape[1], device=device)[None, :] >= lengths[:, None]
                batch_values = torch.empty((len(neurons), len(batch)))
                batch_positions = torch.empty((len(neurons), len(batch)), dtype=torch.long)

                def read(layer: int, post: Float[Tensor, "batch pos d_mlp"]) -> None:
                    acts = post[:, :, columns[layer]].float().masked_fill(is_pad[:, :, None], float("-inf"))
                    best = acts.max(dim=1)  # over positions: (batch, n_layer_neurons)
                    batch_values[slots[layer]] = best.values.T.cpu()
                    batch_positions[slots[layer]] = best.indices.T.cpu()

                run_mlp_post(model, tokens, layers, read)
                top.update(batch_values, torch.tensor([first + i for i in batch]), batch_positions)
                tokens_done += int(lengths.sum())
            bar.update(len(chunk))
            if report is not None:
                report(len(ids), tokens_done)
    if not ids:
        raise CorpusError("cannot scan an empty corpus")

    results = []
    for row, neuron in enumerate(neurons):
        hits = [
            ContextHit(doc_id=ids[doc], position=position, activation=value)
            for value, doc, position in zip(
                top.values[row].tolist(), top.docs[row].tolist(), top.positions[row].tolist()
            )
        ]
        results.append(NeuronContexts(neuron=neuron, hits=hits))
    return results


def merge_hits(hits: Iterable[ContextHit], k: int) -> list[ContextHit]:
    """The exact top ``k`` of several scans' top lists, given shard after shard in corpus order,
    each best first: ties go to the earlier document, as in a single scan."""
    return sorted(hits, key=lambda hit: -hit.activation)[:k]  # stable: keeps corpus order in ties
