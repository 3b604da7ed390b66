"""Registry pieces without a server (spec §15-17): manifest checks before any download, where a name
is pulled from, GGUF file choice, Ollama's partial-download records, the catalogue override and
the ed25519-signed token request."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ollmlx.errors import BadRequest, OllmlxError
from ollmlx.registry import auth, catalogue
from ollmlx.registry.download import ollama_part_offset
from ollmlx.registry.huggingface import RepoFile, RepoListing, choose_gguf
from ollmlx.registry.ollama import RegistryError, parse_manifest
from ollmlx.serve.pull import resolve_source
from ollmlx.store.names import parse_name

GOOD = "sha256:" + "a" * 64


def manifest(layers: list[dict[str, object]], **top: object) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": GOOD, "size": 2},
           "layers": layers, **top}
    return json.dumps(doc).encode()


def layer(digest: str = GOOD, size: object = 10, media: str = "application/vnd.ollama.image.model",
          **extra: object) -> dict[str, object]:
    return {"mediaType": media, "digest": digest, "size": size, **extra}


def test_manifest_accepts_ollama_layers() -> None:
    m = parse_manifest(manifest([layer(), layer(media="application/vnd.ollama.image.tensor", name="model.w"),
                                 layer(media="application/vnd.ollama.image.json", name="sub/config.json")]))
    assert len(m.layers) == 3


@pytest.mark.parametrize("bad", [
    layer("../../etc/x"), layer("/etc/passwd"), layer("sha256:../../x"), layer("sha256:" + "g" * 64),
    layer(size=-1), layer(size="10"), layer(size=True), layer(media="text/html"),
    layer(media="application/vnd.ollama.image.json", name="../config.json"),
    layer(media="application/vnd.ollama.image.json", name="/abs.json"),
])
def test_manifest_rejects_paths_sizes_and_media_types(bad: dict[str, object]) -> None:
    with pytest.raises(RegistryError):
        parse_manifest(manifest([bad]))


def test_manifest_rejects_other_documents() -> None:
    for data in (b"[]", b"not json", manifest([], schemaVersion=1),
                 manifest([], mediaType="application/vnd.oci.image.index.v1+json")):
        with pytest.raises(RegistryError):
            parse_manifest(data)


def test_source_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OLLMLX_CATALOGUE", str(tmp_path / "none.json"))
    s = resolve_source(parse_name("hf.co/org/repo:Q8_0"), None)
    assert (s.kind, s.repo, s.selector) == ("hf", "org/repo", "Q8_0")
    s = resolve_source(parse_name("qwen3:0.6b"), None)
    assert (s.kind, s.repo) == ("hf", "mlx-community/Qwen3-0.6B-4bit")
    assert resolve_source(parse_name("qwen3:0.6b"), "ollama").kind == "ollama"
    assert resolve_source(parse_name("some-model-nobody-maps"), None).kind == "ollama"
    assert resolve_source(parse_name("org/repo"), "HF").repo == "org/repo"
    with pytest.raises(BadRequest):
        resolve_source(parse_name("some-model-nobody-maps"), "hf")
    with pytest.raises(BadRequest):
        resolve_source(parse_name("x"), "ftp")


def test_user_catalogue_overrides_and_removes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user = tmp_path / "catalogue.json"
    user.write_text(json.dumps({"qwen3:0.6b": None, "mine:1b": "me/My-Model-4bit:Q4_K_M"}))
    monkeypatch.setenv("OLLMLX_CATALOGUE", str(user))
    assert catalogue.lookup(parse_name("qwen3:0.6b")) is None
    assert resolve_source(parse_name("qwen3:0.6b"), None).kind == "ollama"
    s = resolve_source(parse_name("MINE:1b"), None)
    assert (s.repo, s.selector) == ("me/My-Model-4bit", "Q4_K_M")
    assert ("mine:1b", "me/My-Model-4bit:Q4_K_M") in catalogue.matching("my-model")


def test_gguf_choice() -> None:
    files = [RepoFile("m-Q8_0.gguf", 800), RepoFile("m-Q4_K_S.gguf", 390), RepoFile("m-Q4_K_M.gguf", 400),
             RepoFile("m-IQ4_XS.gguf", 350), RepoFile("mmproj-m-f16.gguf", 100), RepoFile("README.md", 1)]
    repo = RepoListing("o/m", "c" * 40, files)
    assert choose_gguf(repo, None).name == "m-Q4_K_M.gguf"
    assert choose_gguf(repo, "latest").name == "m-Q4_K_M.gguf"
    assert choose_gguf(repo, "q8_0").name == "m-Q8_0.gguf"
    no_km = RepoListing("o/m", "c" * 40, [f for f in files if "K_M" not in f.name])
    assert choose_gguf(no_km, None).name == "m-IQ4_XS.gguf"  # the smallest 4-bit file
    with pytest.raises(OllmlxError, match="available"):
        choose_gguf(repo, "Q2_K")
    split = RepoListing("o/m", "c" * 40, [RepoFile("m-Q4_K_M-00001-of-00002.gguf", 5)])
    with pytest.raises(OllmlxError, match="split"):
        choose_gguf(split, None)


def test_ollama_partial_records(tmp_path: Path) -> None:
    partial = tmp_path / "sha256-x-partial"
    assert ollama_part_offset(partial) is None
    for n, (off, size, done) in enumerate([(0, 100, 100), (100, 100, 40), (200, 100, 100)]):
        (tmp_path / f"sha256-x-partial-{n}").write_text(json.dumps({"N": n, "Offset": off, "Size": size,
                                                                    "Completed": done}))
    assert ollama_part_offset(partial) == 140  # contiguous good bytes only


def test_challenge_and_signed_token_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    ch = auth.parse_challenge('Bearer realm="https://reg.example/token",service="reg",scope="repository:a/b:pull"')
    assert (ch.realm, ch.service, ch.scope) == ("https://reg.example/token", "reg", "repository:a/b:pull")
    auth.check_realm(ch, "reg.example")
    with pytest.raises(ValueError):
        auth.check_realm(ch, "other.example")
    monkeypatch.setenv("OLLMLX_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    assert auth.sign(b"x") is None  # no key, unsigned request
    key = Ed25519PrivateKey.generate()
    (tmp_path / "id_ed25519").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    header = auth.token_request_auth("https://reg.example/token?x=1")
    assert header is not None
    pub_b64, sig_b64 = header.split(":")
    wire = base64.b64decode(pub_b64)
    pub = Ed25519PublicKey.from_public_bytes(wire[-32:])
    empty = base64.b64encode(b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").decode()
    pub.verify(base64.b64decode(sig_b64), f"GET,https://reg.example/token?x=1,{empty}".encode())
