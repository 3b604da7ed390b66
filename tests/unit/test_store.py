"""Store layout and atomicity (spec §16), create from GGUF and HF directories (spec §6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import smollm2_gguf
from ollmlx.errors import BadRequest, DigestMismatch, ModelNotFound
from ollmlx.store import manifests as mf
from ollmlx.store.blobs import BlobStore, digest_bytes, normalize_digest
from ollmlx.store.create import CreateError, CreateSpec, Creator
from ollmlx.store.names import parse_name
from ollmlx.store.store import Store


def test_digest_format_is_checked_before_any_path_is_built(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    for bad in ("../../etc/passwd", "sha256:abc", "sha256:" + "g" * 64, "sha256-" + "a" * 63, "", "sha1:" + "a" * 64):
        with pytest.raises(BadRequest, match="invalid digest format"):
            blobs.path(bad)
    assert normalize_digest("sha256-" + "A" * 64) == "sha256:" + "a" * 64


def test_blob_write_is_verified_and_leaves_nothing_on_mismatch(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    d = blobs.write_bytes(b"hello")
    assert d == digest_bytes(b"hello") and blobs.path(d).read_bytes() == b"hello"
    assert oct(blobs.path(d).stat().st_mode & 0o777) == "0o644"
    with pytest.raises(DigestMismatch):
        blobs.write_bytes(b"other", expected=d)
    assert sorted(p.name for p in blobs.dir.iterdir()) == [d.replace(":", "-")]


def _create(store: Store, name: str, **kw: object) -> list[dict]:
    events: list[dict] = []
    Creator(store, events.append).run(CreateSpec(name=parse_name(name), **kw))  # type: ignore[arg-type]
    return events


def test_create_from_gguf_layout_and_statuses(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.blobs.write_file(smollm2_gguf())
    events = _create(store, "smol", files={"model.gguf": digest}, system="be brief",
                     parameters={"temperature": 0.5, "stop": ["<|im_end|>"]})
    statuses = [e["status"] for e in events]
    assert statuses[0] == "parsing GGUF" and statuses[-2:] == ["writing manifest", "success"]
    path = tmp_path / "manifests/registry.ollama.ai/library/smol/latest"
    doc = json.loads(path.read_bytes())
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == mf.MANIFEST_MEDIA_TYPE
    kinds = [layer["mediaType"] for layer in doc["layers"]]
    # the GGUF's chat template is Ollama's chatml: an autodetected TEMPLATE layer (spec §6 create)
    assert kinds == [mf.MT_MODEL, mf.MT_TEMPLATE, mf.MT_SYSTEM, mf.MT_PARAMS]
    assert "using autodetected template chatml" in statuses
    config = json.loads(store.blobs.read_bytes(doc["config"]["digest"]))
    assert config["model_format"] == "gguf" and config["model_family"] == "llama"
    assert config["file_type"] == "Q4_1" and config["model_type"] == "134.52M"
    model = store.load(parse_name("smol"))
    assert model.system == "be brief" and model.params == {"temperature": 0.5, "stop": ["<|im_end|>"]}


def test_resolved_models_are_kept_until_their_manifest_changes(tmp_path: Path) -> None:
    """Every request resolves its model: the layers are read once per manifest, and a re-created
    model (new manifest at the same name) is read afresh."""
    store = Store(tmp_path)
    digest = store.blobs.write_file(smollm2_gguf())
    _create(store, "smol", files={"model.gguf": digest}, system="first")
    reads: list[str] = []
    read_bytes = store.blobs.read_bytes

    def counted(d: str) -> bytes:
        reads.append(d)
        return read_bytes(d)

    store.blobs.read_bytes = counted  # type: ignore[method-assign]
    first = store.load(parse_name("smol"))
    assert reads and first.system == "first"
    reads.clear()
    assert store.load(parse_name("smol")) is first and not reads
    _create(store, "smol", files={"model.gguf": digest}, system="second")
    again = store.load(parse_name("smol"))
    assert again is not first and again.system == "second"
    _create(store, "copy", from_="smol")
    assert store.load(parse_name("copy")).name == parse_name("copy")


def test_model_deleted_between_manifest_and_blob_reads_is_not_found(tmp_path: Path) -> None:
    """Two servers on one store: B deletes (and prunes) the model just after A read its manifest
    and before A read its template blob. A must answer "not found", not a 500 about a blob."""
    store, other = Store(tmp_path), Store(tmp_path)
    digest = store.blobs.write_file(smollm2_gguf())
    _create(store, "smol", files={"model.gguf": digest}, system="be brief")
    read_manifest = store.manifests.get
    calls = []

    def get_then_delete_elsewhere(name):  # type: ignore[no-untyped-def]
        entry = read_manifest(name)
        if not calls:
            calls.append(name)
            other.delete(name)
        return entry

    store.manifests.get = get_then_delete_elsewhere  # type: ignore[method-assign]
    with pytest.raises(ModelNotFound):
        store.load(parse_name("smol"))
    with pytest.raises(ModelNotFound):
        _create(store, "derived", from_="smol")


def test_create_whose_base_is_deleted_while_its_layers_are_read_says_not_found(tmp_path: Path) -> None:
    """B deletes the base (pruning its params layer) after A resolved it and before A merged its
    parameters: A's create says the base is not found and writes nothing."""
    store, other = Store(tmp_path), Store(tmp_path)
    digest = store.blobs.write_file(smollm2_gguf())
    _create(store, "smol", files={"model.gguf": digest}, parameters={"temperature": 0.5})
    creator = Creator(store, lambda e: None)
    resolve = creator.from_model

    def resolve_then_delete_elsewhere(ref: str) -> list:
        layers = resolve(ref)
        other.delete(parse_name(ref))
        return layers

    creator.from_model = resolve_then_delete_elsewhere  # type: ignore[method-assign]
    with pytest.raises(ModelNotFound, match="smol"):
        creator.run(CreateSpec(name=parse_name("derived"), from_="smol", system="new"))
    assert not any((tmp_path / "manifests").rglob("derived"))
    assert not any(p.name.startswith("sha256-") for p in (tmp_path / "blobs").iterdir()), "nothing left behind"


def test_create_rejects_non_gguf_and_leaves_store_unchanged(tmp_path: Path) -> None:
    store = Store(tmp_path)
    junk = store.blobs.write_bytes(b"not a model at all" * 100)
    truncated = store.blobs.write_bytes(smollm2_gguf().read_bytes()[:4096])
    before = sorted(p.name for p in (tmp_path / "blobs").iterdir())
    with pytest.raises(CreateError, match="supplied file was not in GGUF format"):
        _create(store, "bad", files={"x.gguf": junk})
    with pytest.raises(CreateError):
        _create(store, "bad", files={"x.gguf": truncated})
    with pytest.raises(CreateError, match="neither 'from' or 'files' was specified"):
        _create(store, "bad")
    with pytest.raises(CreateError, match="file path must be relative"):
        _create(store, "bad", files={"../x.gguf": junk})
    assert not (tmp_path / "manifests").exists() or not any((tmp_path / "manifests").rglob("latest"))
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == before


def test_create_from_model_delete_and_prune(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.blobs.write_file(smollm2_gguf())
    _create(store, "base", files={"m.gguf": digest})
    _create(store, "derived", from_="base", system="derived system")
    with pytest.raises(ModelNotFound):
        _create(store, "x", from_="missing")
    store.delete(parse_name("base"))
    assert store.blobs.exists(digest), "a blob still used by another model must stay"
    store.delete(parse_name("derived"))
    assert not store.blobs.exists(digest)
    assert not any((tmp_path / "manifests").rglob("*")), "empty manifest directories are pruned"


def test_manifest_lookup_is_case_insensitive(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _create(store, "Mixed/Case:Tag", files={"m.gguf": store.blobs.write_file(smollm2_gguf())})
    entry = store.entry(parse_name("mixed/case:tag"))
    assert entry is not None and entry.name.display_shortest() == "Mixed/Case:Tag"
