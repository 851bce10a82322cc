import gzip
import json

import pytest

from lookups import CorpusError, Document, InvalidInputError
from plugins.corpora import HubSpec, parse_hub_spec
from services.corpus import (
    Corpus,
    CorpusSelection,
    corpus_info,
    fetch_documents,
    load_corpus,
    split_documents,
    stream_corpus,
    stream_selection,
)


def write_jsonl(path, records, compress=False):
    opener = gzip.open if compress else open
    with opener(path, "wt") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def test_jsonl_keeps_explicit_ids_and_derives_stable_ones(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "one"}, {"text": "two"}, {"text": "  "}])
    docs = load_corpus(str(path)).documents
    assert [d.id for d in docs] == ["a", "c-00001"]  # blank document dropped, ids unchanged
    assert [d.id for d in load_corpus(str(path)).documents] == ["a", "c-00001"]


def test_gzip_txt_parquet_and_folders_load(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "a.jsonl.gz", [{"text": "gz doc"}], compress=True)
    (folder / "sub" / "b.txt").write_text("a text file is one document")
    pq.write_table(pa.table({"text": ["p1", "p2"]}), folder / "c.parquet")
    (folder / "notes.md").write_text("ignored")
    docs = load_corpus(str(folder)).documents
    assert [(d.id, d.text) for d in docs] == [
        ("a-00000", "gz doc"), ("c-00000", "p1"), ("c-00001", "p2"), ("sub/b", "a text file is one document"),
    ]


def test_malformed_line_is_reported_with_its_line_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2"):
        load_corpus(str(path))


def test_missing_text_field_and_empty_corpus_are_refused(tmp_path):
    with pytest.raises(CorpusError, match="'text'"):
        load_corpus(str(write_jsonl(tmp_path / "x.jsonl", [{"body": "no text"}])))
    with pytest.raises(CorpusError, match="no documents"):
        load_corpus(str(write_jsonl(tmp_path / "e.jsonl", [])))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no"):
        load_corpus(str(tmp_path / "empty"))


def test_duplicate_ids_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}])
    with pytest.raises(CorpusError, match="duplicate"):
        load_corpus(str(path))


def test_unknown_spec_names_the_accepted_forms():
    with pytest.raises(CorpusError, match="hf:DATASET"):
        load_corpus("no-such-file.jsonl")


def test_hugging_face_source_loads_a_local_dataset_offline(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "ds" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["first", "second", ""]}), tmp_path / "ds" / "data" / "train-00000.parquet")
    docs = load_corpus(f"hf:{tmp_path / 'ds'}").documents
    assert [(d.id, d.text) for d in docs] == [("ds-000000", "first"), ("ds-000001", "second")]


def test_unreachable_hugging_face_dataset_says_how_to_work_offline(offline_hub):
    with pytest.raises(CorpusError, match="Offline, give a local"):
        load_corpus("hf:nobody/no-such-dataset-lookups")


def corpus_of(n):
    return Corpus(spec="mem", documents=[Document(id=f"d{i:03d}", text=f"t{i}") for i in range(n)])


def test_fraction_split_is_deterministic_and_disjoint():
    corpus = corpus_of(10)
    train = split_documents(corpus, "train", test_fraction=0.3)
    test = split_documents(corpus, "test", test_fraction=0.3)
    assert [d.id for d in train] == [f"d{i:03d}" for i in range(7)]
    assert [d.id for d in test] == ["d007", "d008", "d009"]
    assert split_documents(corpus, "all") == corpus.documents


def test_id_split_uses_the_boundary_id():
    corpus = corpus_of(10)
    assert [d.id for d in split_documents(corpus, "test", test_from_id="d008")] == ["d008", "d009"]
    with pytest.raises(CorpusError, match="empty"):
        split_documents(corpus, "test", test_from_id="z")
    with pytest.raises(InvalidInputError, match="split"):
        split_documents(corpus, "validation")


def test_shared_corpus_split_matches_its_id_convention(corpus_path):
    corpus = load_corpus(str(corpus_path))
    test = split_documents(corpus, "test")
    assert (test[0].id, test[-1].id, len(test)) == ("owt-0800", "owt-0999", 200)
    assert split_documents(corpus, "test", test_from_id="owt-0800") == test


def test_fingerprint_tracks_content():
    a, b = corpus_of(3), corpus_of(3)
    assert a.fingerprint() == b.fingerprint()
    b.documents[1] = Document(id="d001", text="changed")
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint(a.documents[:2]) != a.fingerprint()


def test_streamed_selection_ranges_fetches_and_fingerprint_match_the_in_memory_corpus(corpus_path):
    spec = str(corpus_path)
    selection = CorpusSelection(corpus=spec, split="train", max_docs=300)
    whole = split_documents(load_corpus(spec), "train")[:300]
    assert list(stream_selection(selection)) == whole
    assert list(stream_selection(selection, 64, 128)) == whole[64:128]
    assert list(stream_selection(selection, 256)) == whole[256:]
    test = CorpusSelection(corpus=spec, split="test")
    assert [d.id for d in stream_selection(test, 0, 2)] == ["owt-0800", "owt-0801"]
    assert fetch_documents(selection, {"owt-0005", "owt-0002"}) == [whole[2], whole[5]]
    with pytest.raises(InvalidInputError, match="owt-0900"):
        fetch_documents(selection, {"owt-0900"})  # a test document is not in the train split
    info = corpus_info(selection)
    assert (info.n_documents, info.fingerprint) == (300, load_corpus(spec).fingerprint(whole))


def test_a_scan_reads_the_corpus_a_chunk_at_a_time(tiny_gpt2, corpus_path):
    from services.scan import SCAN_CHUNK_DOCS, scan_corpus
    from services.schemas import NeuronRef

    pulled = 0

    def documents():
        nonlocal pulled
        for doc in stream_selection(CorpusSelection(corpus=str(corpus_path), max_docs=3 * SCAN_CHUNK_DOCS)):
            pulled += 1
            yield Document(id=doc.id, text=doc.text[:200])

    seen = []
    scan_corpus(tiny_gpt2, [NeuronRef(layer=1, index=3)], documents(), top_k=3, context_length=24,
                report=lambda done, tokens: seen.append((done, tokens, pulled)))
    assert [done for done, _, _ in seen] == [SCAN_CHUNK_DOCS, 2 * SCAN_CHUNK_DOCS, 3 * SCAN_CHUNK_DOCS]
    assert [p for _, _, p in seen][:2] == [SCAN_CHUNK_DOCS, 2 * SCAN_CHUNK_DOCS]  # never more than a chunk ahead
    assert 0 < seen[0][1] < seen[1][1] < seen[2][1]


def test_hub_spec_names_config_and_options():
    assert parse_hub_spec("hf:NeelNanda/pile-10k") == HubSpec(name="NeelNanda/pile-10k")
    assert parse_hub_spec("hf:wikitext:wikitext-2-raw-v1?split=validation&revision=abc123&text_column=body") == \
        HubSpec(name="wikitext", config="wikitext-2-raw-v1", split="validation", revision="abc123",
                text_column="body")
    # Before configs, the part after the name was the split; such specs keep their meaning.
    assert parse_hub_spec("hf:stas/openwebtext-10k:train[:100]") == \
        HubSpec(name="stas/openwebtext-10k", split="train[:100]")
    with pytest.raises(CorpusError, match="unknown option 'column'.*text_column"):
        parse_hub_spec("hf:a/b?column=body")
    with pytest.raises(CorpusError, match="'split' needs exactly one"):
        parse_hub_spec("hf:a/b?split=train&split=test")
    with pytest.raises(CorpusError, match="KEY=VALUE"):
        parse_hub_spec("hf:a/b?split")


def test_hugging_face_source_streams_a_config_split_and_text_column_offline(tmp_path, offline_hub):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "ds"
    for config in ("small", "large"):
        (root / config).mkdir(parents=True)
        for split in ("train", "test"):
            pq.write_table(pa.table({"body": [f"{config} {split} {i}" for i in range(3)], "text": ["x"] * 3}),
                           root / config / f"{split}-00000.parquet")
    (root / "README.md").write_text(
        "---\nconfigs:\n"
        + "".join(f"- config_name: {c}\n  data_files:\n  - split: train\n    path: {c}/train-*.parquet\n"
                  f"  - split: test\n    path: {c}/test-*.parquet\n" for c in ("small", "large"))
        + "---\n")
    docs = list(stream_corpus(f"hf:{root}:large?split=test&text_column=body"))
    assert [(d.id, d.text) for d in docs] == [(f"ds-{i:06d}", f"large test {i}") for i in range(3)]
    with pytest.raises(CorpusError, match="no 'content' column.*text_column"):
        list(stream_corpus(f"hf:{root}:small?text_column=content"))
