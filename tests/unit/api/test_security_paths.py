"""Issue 24, what a principal may make a worker read, against the real app and a real SQLite
store: no ``datasets`` packaged builder as a corpus (``hf:text`` read every file of the worker's
folder), no ``local:`` backend resolved against the worker's folder, and a folder corpus whose
entries link out of it is refused when it is read. Every refusal is a 422 naming the field, and
nothing refused is stored."""

from __future__ import annotations

import pytest

from tests.unit.api.conftest import auth, fields
from tests.unit.api.test_access_api import CONFIG, EXPLAIN


def stored(store) -> tuple[int, int]:
    from sqlalchemy import func, select

    from services.store.models import Campaign, JobRow

    with store.session() as session:
        return (session.scalar(select(func.count()).select_from(Campaign)),
                session.scalar(select(func.count()).select_from(JobRow)))


def test_packaged_datasets_builders_are_refused_as_corpora(client_for, store):
    from services.corpus import packaged_builders

    client = client_for(corpus_roots=[], model_roots=[])
    builders = packaged_builders()
    assert {"text", "json", "csv", "parquet", "arrow", "pandas", "imagefolder", "audiofolder", "webdataset",
            "sql"} <= builders  # read from the installed datasets, not a list of ours
    specs = [f"hf:{name}" for name in sorted(builders)] + ["hf:TEXT", "hf:json:default", "hf:csv?split=train",
                                                           "hf:parquet:x?text_column=body"]
    for spec in specs:
        refused = fields(client.post("/v1/campaigns", json={**CONFIG, "corpus": spec}, headers=auth("alice")))
        assert list(refused) == ["body.corpus"], spec
        assert "packaged datasets builder, which reads local files" in refused["body.corpus"], spec
    for kind, body in (("scan", {"neurons": ["3:5"]}),
                       ("truncate", {"contexts": [{"neuron": {"layer": 3, "index": 5}, "hits": []}]})):
        refused = fields(client.post(f"/v1/jobs/{kind}", json={**body, "corpus": "hf:text"}, headers=auth("alice")))
        assert list(refused) == ["body.corpus"], kind
    assert stored(store) == (0, 0)
    assert client.post("/v1/campaigns", json={**CONFIG, "corpus": "hf:owner/text"},
                       headers=auth("alice")).status_code == 202  # a hub dataset that happens to be called text


def test_a_relative_dataset_name_is_never_read_from_the_working_directory(tmp_path, monkeypatch):
    """The worker's folder holds owner/name: ``hf:owner/name`` must not read it (the API, in
    another folder, cannot see that it exists)."""
    from lookups import CorpusError
    from services.corpus import stream_corpus

    (tmp_path / "owner" / "name").mkdir(parents=True)
    (tmp_path / "owner" / "name" / "secrets.txt").write_text("API_KEY=sk-live-123\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match="relative to the working directory") as refused:
        list(stream_corpus("hf:owner/name"))
    assert "sk-live" not in str(refused.value)


@pytest.fixture
def linked(tmp_path):
    """A corpus folder inside a root and, outside it, a secret file and a folder of documents."""
    root, outside = tmp_path / "corpora", tmp_path / "outside"
    (root / "c").mkdir(parents=True)
    (outside / "more").mkdir(parents=True)
    (root / "c" / "a.jsonl").write_text('{"id": "a", "text": "inside"}\n')
    (outside / "passwd.txt").write_text("root:x:0:0:secret\n")
    (outside / "more" / "b.jsonl").write_text('{"id": "b", "text": "outside secret"}\n')
    return root, outside


@pytest.mark.parametrize("link", ["to-a-file", "to-a-folder"])
def test_a_folder_corpus_refuses_entries_that_link_out_of_it(linked, link, client_for, store):
    from lookups import CorpusError
    from services.corpus import CorpusSelection, fetch_documents, index_corpus, stream_corpus

    root, outside = linked
    folder = root / "c"
    if link == "to-a-file":
        (folder / "sub").mkdir()
        (folder / "sub" / "passwd.txt").symlink_to(outside / "passwd.txt")
    else:
        (folder / "more").symlink_to(outside / "more", target_is_directory=True)
    client = client_for(corpus_roots=[root])
    accepted = client.post("/v1/jobs/truncate", headers=auth("alice"), json={
        "corpus": str(folder), "contexts": [{"neuron": {"layer": 3, "index": 5}, "hits": []}]})
    assert accepted.status_code == 202  # the folder itself is inside the root; its reading refuses

    entry = "sub/passwd.txt" if link == "to-a-file" else "more"
    for read in (lambda: list(stream_corpus(str(folder))), lambda: index_corpus(str(folder)),
                 lambda: fetch_documents(CorpusSelection(corpus=str(folder), split="all"), {"a"})):
        with pytest.raises(CorpusError, match=f"'{entry}' is a link out of the corpus folder") as refused:
            read()
        assert str(outside) not in str(refused.value) and "secret" not in str(refused.value)
    # a dataset folder read through hf: is held to the same rule
    with pytest.raises(CorpusError, match="link out of the corpus folder"):
        list(stream_corpus(f"hf:{folder}"))


def test_links_that_stay_inside_the_folder_are_read(linked):
    from services.corpus import stream_corpus

    root, _ = linked
    (root / "c" / "again.jsonl").symlink_to(root / "c" / "a.jsonl")
    assert sorted(d.text for d in stream_corpus(str(root / "c"))) == ["inside", "inside"]


def test_local_backends_are_packaged_names_or_paths_under_the_model_roots(client_for, store, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    client = client_for(model_roots=[models])
    for spec in ("local:secrets.env", "local:app/config", "local:model.bin", "local:./m.gguf", "local:~/m.gguf",
                 "local:m.gguf"):
        for path, body, field in (("/v1/campaigns", {**CONFIG, "explainer": spec}, "body.explainer"),
                                  ("/v1/campaigns", {**CONFIG, "classifier": spec}, "body.classifier"),
                                  ("/v1/jobs/explain", {**EXPLAIN, "backend": spec}, "body.backend")):
            refused = fields(client.post(path, json=body, headers=auth("alice")))
            assert list(refused) == [field], spec
            assert "a packaged model (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-f16)" in refused[field], spec
            assert str(tmp_path) not in refused[field] and "/work" not in refused[field]  # no server paths
    assert stored(store) == (0, 0)
    for spec in ("local", "local:smollm2-f16", "local:qwen2.5-coder-1.5b", f"local:{models}/m.gguf",
                 f"local:{models}/m.bin"):
        assert client.post("/v1/jobs/explain", json={**EXPLAIN, "backend": spec},
                           headers=auth("alice")).status_code == 202, spec
