"""Create a model in the store (spec §6 /api/create): from a GGUF file, an HF/MLX directory, or
another model, plus template/system/parameters/messages/license layers.

Runs in a worker thread; `progress` receives Ollama's status objects. Nothing is visible until
the manifest is written last, after every blob it names exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollmlx.config import noprune
from ollmlx.errors import BadRequest, ModelNotFound, StoreError
from ollmlx.runner.protocol import ModelSpec
from ollmlx.store import manifests as mf
from ollmlx.store.blobs import normalize_digest, track_in_progress
from ollmlx.store.convert import run_worker
from ollmlx.store.gguf_info import NotGGUF, human_number, read_gguf
from ollmlx.store.locking import mark_in_progress
from ollmlx.store.manifests import Layer, Manifest
from ollmlx.store.names import ModelName, parse_name
from ollmlx.store.safetensors import TensorInfo, pack, read_header
from ollmlx.store.store import Store

Progress = Callable[[dict[str, Any]], None]
WEIGHT_SUFFIXES = (".safetensors",)
GGUF_QUANTS = {"Q4_K_M", "Q4_K_S", "Q8_0", "F16", "BF16", "F32", "Q4_0", "Q5_K_M", "Q6_K"}
MLX_QUANTS = {"Q4_K_M": 4, "Q4_K_S": 4, "Q4_0": 4, "Q4": 4, "INT4": 4, "Q8_0": 8, "Q8": 8, "INT8": 8}


class CreateError(BadRequest):
    pass


@dataclass
class CreateSpec:
    name: ModelName
    from_: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    quantize: str | None = None
    convert: str | None = None  # "mlx": store a GGUF model as an MLX model
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None


def go_json(value: Any) -> bytes:
    """json.NewEncoder(...).Encode: compact, HTML-escaped, trailing newline."""
    s = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (s + "\n").encode()


def check_relative(path: str) -> None:
    """Go's fs.ValidPath: slash-separated, no empty, "." or ".." element, not rooted."""
    parts = path.split("/")
    if not path or "\x00" in path or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise CreateError("file path must be relative")


class Creator:
    def __init__(self, store: Store, progress: Progress,
                 pull_missing: Callable[[ModelName], None] | None = None) -> None:
        self.store = store
        self.progress = progress
        self.pull_missing = pull_missing  # fetches a `from` model that is not here (the server's pull)
        self.config: dict[str, Any] = {}
        self._intermediate: set[str] = set()  # whole-file blobs split into tensor layers
        self._written: set[str] = set()  # blobs this create wrote: removed again if it fails
        self._work_fds: dict[Path, int] = {}

    def status(self, text: str, **extra: Any) -> None:
        self.progress({"status": text, **extra})

    def new_layer(self, data: bytes, media_type: str) -> Layer:
        digest = self._put(data)
        return Layer(media_type, digest, len(data))

    def _put(self, data: bytes) -> str:
        from ollmlx.store.blobs import digest_bytes

        digest = digest_bytes(data)
        existed = self.store.blobs.exists(digest)
        if not existed:
            self._written.add(self.store.blobs.write_bytes(data, digest))
        self.status(f"{'using existing' if existed else 'creating new'} layer {digest}")
        return digest

    # -- sources -----------------------------------------------------------------------------
    def _blob(self, digest: str) -> str:
        d = normalize_digest(digest)
        if not self.store.blobs.exists(d):
            raise CreateError(f'blob "{d}" not found')
        return d

    def from_model(self, ref: str) -> list[Layer]:
        base = parse_name(ref)
        if not base.is_valid():
            raise CreateError("invalid model name")
        try:
            model = self.store.load(base, display=ref)
        except ModelNotFound:
            if self.pull_missing is None:
                raise
            self.pull_missing(base)  # as Ollama's parseFromModel: a base not here is pulled first
            model = self.store.load(base, display=ref)
        for key in ("model_format", "model_family", "model_families", "model_type", "file_type", "renderer", "parser",
                    "requires"):
            if key in model.config and key not in self.config:
                self.config[key] = model.config[key]
        # each layer records the model it came from (parseFromModel): details.parent_model
        origin = model.name.display_shortest()
        return [dataclasses.replace(layer, from_=origin) for layer in model.manifest.layers]

    def from_files(self, files: dict[str, str]) -> list[Layer]:
        if not files:
            raise CreateError("no files provided to convert")
        for fname in files:
            check_relative(fname)
        ggufs = [f for f in files if f.lower().endswith(".gguf")]
        if ggufs or (len(files) == 1 and not any(f.endswith(WEIGHT_SUFFIXES) or f.endswith(".json") for f in files)):
            return [self._gguf_layer(fname, files[fname]) for fname in (ggufs or list(files))]
        if not any(f.endswith(WEIGHT_SUFFIXES) for f in files):
            raise CreateError("unknown type")
        return self._safetensors_layers(files)

    def _gguf_layer(self, fname: str, digest: str) -> Layer:
        self.status("parsing GGUF")
        d = self._blob(digest)
        path = self.store.blobs.path(d)
        try:
            info = read_gguf(path)
            size = path.stat().st_size
        except (NotGGUF, FileNotFoundError) as exc:
            if not path.is_file():  # removed meanwhile (a delete elsewhere pruned it): say so
                raise CreateError(f'blob "{d}" not found') from exc
            raise CreateError("supplied file was not in GGUF format") from exc
        general_type = str(info.kv.get("general.type", "model"))
        media = mf.MT_ADAPTER if general_type == "adapter" else mf.MT_MODEL
        if media == mf.MT_MODEL:
            arch = info.architecture
            self.config.setdefault("model_format", "gguf")
            self.config.setdefault("model_family", arch)
            self.config.setdefault("model_type", human_number(info.parameter_count))
            self.config.setdefault("file_type", info.file_type)
            self.config.setdefault("model_families", [arch])
        self.status(f"using existing layer {d}")
        return Layer(media, d, size, from_=None)

    def _safetensors_layers(self, files: dict[str, str]) -> list[Layer]:
        self.status("converting model")
        layers: list[Layer] = []
        config: dict[str, Any] = {}
        for fname, digest in sorted(files.items()):
            if fname.endswith(WEIGHT_SUFFIXES):
                continue
            d = self._blob(digest)
            layers.append(Layer(mf.MT_JSON, d, self.store.blobs.size(d), name=fname))
            if fname == "config.json":
                try:
                    config = json.loads(self.store.blobs.read_bytes(d))
                except ValueError as exc:
                    raise CreateError(f"config.json: {exc}") from exc
        if not config:
            raise CreateError("unknown type")
        quant = config.get("quantization") or config.get("quantization_config") or {}
        group_size = int(quant.get("group_size", 64)) if isinstance(quant, dict) else 64
        tensors: dict[str, tuple[TensorInfo, Any]] = {}
        for fname, digest in sorted(files.items()):
            if fname.endswith(WEIGHT_SUFFIXES):
                path = self.store.blobs.path(self._blob(digest))
                infos, _ = read_header(path)
                for t in infos:
                    tensors[t.name] = (t, path)
        params = 0
        bits_seen: set[int] = set()
        for name in sorted(tensors):
            info, path = tensors[name]
            if name.endswith((".scales", ".biases")) and name.rsplit(".", 1)[0] + ".weight" in tensors:
                continue  # packed with its weight below
            base = name[: -len(".weight")] if name.endswith(".weight") else None
            scales = tensors.get(f"{base}.scales") if base else None
            if scales is not None and base is not None:
                sinfo, spath = scales
                gs = int((quant.get(base) or {}).get("group_size", group_size)) if isinstance(quant.get(base), dict) else group_size
                in_dims = sinfo.shape[-1] * gs
                bits = info.shape[-1] * 32 // max(1, in_dims)
                bits_seen.add(bits)
                parts = [(info, path), (sinfo, spath)]
                rename = {f"{base}.scales": f"{name}.scale"}
                if f"{base}.biases" in tensors:
                    binfo, bpath = tensors[f"{base}.biases"]
                    parts.append((binfo, bpath))
                    rename[f"{base}.biases"] = f"{name}.bias"
                meta = {"quant_type": f"int{bits}", "group_size": str(gs)}
                params += in_dims * (sinfo.shape[0] if len(sinfo.shape) == 2 else 1)
                layers.append(self._tensor_layer(name, pack(parts, meta, rename)))
            else:
                n = 1
                for dim in info.shape:
                    n *= dim
                params += n
                layers.append(self._tensor_layer(name, pack([(info, path)])))
        arch = str(config.get("model_type", "unknown"))
        self.config.setdefault("model_format", "safetensors")
        self.config.setdefault("model_family", arch)
        self.config.setdefault("model_families", [arch])
        self.config.setdefault("model_type", human_number(params))
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "")
        qlabel = f"int{min(bits_seen)}" if bits_seen else {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}.get(dtype, dtype.upper() or "unknown")
        self.config.setdefault("file_type", qlabel)
        return layers

    def _autodetect_template(self, layers: list[Layer], spec: CreateSpec) -> dict[str, Any]:
        """detectChatTemplate (spec §6 create): a GGUF's own Jinja chat template matched against
        Ollama's library (store/template_detect.py) gives a TEMPLATE layer; returns its params.
        A TEMPLATE of the request replaces the layer later, but the stop strings stay (as in Ollama)."""
        from ollmlx.store.blobs import digest_bytes
        from ollmlx.store.template_detect import detect

        params: dict[str, Any] = {}
        for layer in [x for x in layers if x.media_type == mf.MT_MODEL]:
            try:
                chat_template = read_gguf(self.store.blobs.path(layer.digest)).chat_template
            except FileNotFoundError as exc:  # pruned by a delete elsewhere since it was parsed
                raise CreateError(f'blob "{layer.digest}" not found') from exc
            found = detect(chat_template) if chat_template else None
            if found is None:
                continue
            data = found.text.encode()
            digest = digest_bytes(data)
            if not self.store.blobs.exists(digest):
                self._written.add(self.store.blobs.write_bytes(data, digest))
            layers.append(Layer(mf.MT_TEMPLATE, digest, len(data)))
            params.update(found.parameters or {})
            if not spec.template:
                self.status(f"using autodetected template {found.name}")
        return params

    def _tensor_layer(self, name: str, chunks: Any) -> Layer:
        digest = self.store.blobs.write_chunks(chunks)
        self._written.add(digest)
        return Layer(mf.MT_TENSOR, digest, self.store.blobs.size(digest), name=name)

    # -- the whole create --------------------------------------------------------------------
    def run(self, spec: CreateSpec) -> None:
        try:
            try:
                self._run(spec)
            except StoreError:
                # the base was deleted elsewhere (another server on this store) while we read its
                # layers: the cause is a missing model, not a damaged store
                if spec.from_ and self.store.entry(parse_name(spec.from_)) is None:
                    raise ModelNotFound(spec.from_) from None
                raise
        except BaseException:
            # A failed create (bad input, a full disk, the server stopping) takes back the blobs it
            # wrote; prune keeps any that a manifest references meanwhile.
            with contextlib.suppress(Exception):
                self.store.prune(self._written | self._intermediate)
            raise
        finally:
            for work in list(self._work_fds):
                self._drop_workdir(work)

    def _run(self, spec: CreateSpec) -> None:
        detected_params: dict[str, Any] = {}
        for key in ("renderer", "parser", "requires"):  # the request's win over the base model's
            if getattr(spec, key):
                self.config[key] = getattr(spec, key)
        if spec.from_:
            layers = self.from_model(spec.from_)
        elif spec.files:
            layers = self.from_files(spec.files)
            detected_params = self._autodetect_template(layers, spec)
        else:
            raise CreateError("neither 'from' or 'files' was specified")
        if spec.adapters:
            if len(spec.adapters) > 1 and not all(k.endswith((".safetensors", ".json")) for k in spec.adapters):
                raise CreateError("only one adapter is currently supported")
            for fname in spec.adapters:
                check_relative(fname)
            for fname, digest in sorted(spec.adapters.items()):
                d = self._blob(digest)
                layers.append(Layer(mf.MT_ADAPTER, d, self.store.blobs.size(d), name=fname))
        if spec.convert:
            layers = self._convert(layers, spec.convert)
        if spec.quantize:
            layers = self._quantize(layers, spec.quantize)

        def replace(media: str, layer: Layer | None) -> None:
            nonlocal layers
            layers = [x for x in layers if x.media_type != media and not (media == mf.MT_TEMPLATE and x.media_type == mf.MT_PROMPT)]
            if layer is not None:
                layers.append(layer)

        if spec.template:
            from ollmlx.text.ollama_template import parse as parse_template

            try:
                parse_template(spec.template)
            except Exception as exc:
                raise CreateError(f"template error: {exc}") from exc
            replace(mf.MT_TEMPLATE, self.new_layer(spec.template.encode(), mf.MT_TEMPLATE))
        if spec.system:
            replace(mf.MT_SYSTEM, self.new_layer(spec.system.encode(), mf.MT_SYSTEM))
        licenses = [spec.license] if isinstance(spec.license, str) else list(spec.license or [])
        for text in licenses:
            if text:
                layers.append(self.new_layer(text.encode(), mf.MT_LICENSE))
        params = dict(spec.parameters or {})
        for k, v in detected_params.items():  # the detected template's stop strings, unless given
            params.setdefault(k, v)
        for layer in [x for x in layers if x.media_type == mf.MT_PARAMS]:
            for k, v in json.loads(self.store.blobs.read_bytes(layer.digest)).items():
                params.setdefault(k, v)
        if params:
            replace(mf.MT_PARAMS, self.new_layer(go_json(params), mf.MT_PARAMS))
        if spec.messages:
            replace(mf.MT_MESSAGES, self.new_layer(go_json(spec.messages), mf.MT_MESSAGES))

        self.config.setdefault("model_format", "gguf")
        self.config.setdefault("model_families", [self.config.get("model_family", "")])
        config = {
            "model_format": self.config.get("model_format"),
            "model_family": self.config.get("model_family", ""),
            "model_families": self.config.get("model_families"),
            "model_type": self.config.get("model_type", ""),
            "file_type": self.config.get("file_type", ""),
            **{k: self.config[k] for k in ("renderer", "parser", "requires") if self.config.get(k)},
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [x.digest for x in layers]},
        }
        data = go_json(config)
        from ollmlx.store.blobs import digest_bytes

        cfg_digest = digest_bytes(data)
        if not self.store.blobs.exists(cfg_digest):
            self._written.add(self.store.blobs.write_bytes(data, cfg_digest))
        manifest = Manifest(config=Layer(mf.CONFIG_MEDIA_TYPE, cfg_digest, len(data)), layers=layers)
        self.status("writing manifest")
        with self.store.lock:
            old = self.store.entry(spec.name)
            self.store.write_manifest(spec.name, manifest)
            # the old manifest's layers no model uses any more go, unless OLLAMA_NOPRUNE
            replaced = old.manifest.digests() - manifest.digests() if old and not noprune() else set()
            stale = self._intermediate | replaced
            if stale:
                self.store.prune(stale)
        self.status("success")

    # -- conversions (run in an engine subprocess: the server never imports mlx/llama_cpp) -----
    def _workdir(self) -> Path:
        root = self.store.root / ".tmp"
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="convert-", dir=root))
        # flocked while we work (a sweep by another server leaves it alone), removed at shutdown
        fd = os.open(work / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        mark_in_progress(fd)
        self._work_fds[work] = fd
        track_in_progress(work, True)
        return work

    def _drop_workdir(self, work: Path) -> None:
        fd = self._work_fds.pop(work, None)
        if fd is not None:
            os.close(fd)
        shutil.rmtree(work, ignore_errors=True)
        track_in_progress(work, False)

    def _import_dir(self, directory: Path) -> list[Layer]:
        files = {str(p.relative_to(directory)): self.store.blobs.write_file(p)
                 for p in sorted(directory.rglob("*")) if p.is_file()}
        self._written |= set(files.values())
        layers = self._safetensors_layers(files)
        self._intermediate |= {d for name, d in files.items() if name.endswith(".safetensors")}
        return layers

    def _convert(self, layers: list[Layer], target: str) -> list[Layer]:
        if target.lower() != "mlx":
            raise CreateError(f'unsupported conversion "{target}"; supported: "mlx"')
        model = [x for x in layers if x.media_type == mf.MT_MODEL]
        if not model:
            if any(x.media_type == mf.MT_TENSOR for x in layers):
                return layers  # already an MLX model
            raise CreateError("no GGUF model to convert")
        work = self._workdir()
        try:
            src = self.store.blobs.path(model[0].digest)
            run_worker(["gguf-to-mlx", "--src", str(src), "--out", str(work / "model")], self.progress,
                       lambda o: {"status": o["status"]} if o.get("status") not in (None, "done") else None)
            for key in ("model_format", "model_family", "model_families", "model_type", "file_type"):
                self.config.pop(key, None)
            converted = self._import_dir(work / "model")
        finally:
            self._drop_workdir(work)
        rest = [x for x in layers if x.media_type not in (mf.MT_MODEL, mf.MT_TENSOR, mf.MT_JSON)]
        return converted + rest

    def _quantize(self, layers: list[Layer], quantize: str) -> list[Layer]:
        q = quantize.upper()
        if q == "Q4_K":
            q = "Q4_K_M"
        ft = str(self.config.get("file_type", "")).upper()
        if ft not in {"F16", "BF16", "F32"}:
            raise CreateError("quantization is only supported for F16, BF16 and F32 models")
        work = self._workdir()
        try:
            model = [x for x in layers if x.media_type == mf.MT_MODEL]
            if model:  # GGUF: llama.cpp's quantizer
                if q not in GGUF_QUANTS:
                    raise CreateError(f"unsupported quantization type {quantize}")
                src = self.store.blobs.path(model[0].digest)
                out = work / "out.gguf"
                status = f"quantizing {ft} model to {q}"
                run_worker(["quantize-gguf", "--src", str(src), "--out", str(out), "--type", q], self.progress,
                           lambda o: {"status": status, "digest": "0000000000000000000", "total": o.get("total", 0),
                                      "completed": o.get("completed", 0)} if o.get("status") == "quantizing" else None)
                self.status("verifying conversion")
                self.config["file_type"] = q
                self._written.add(quantized := self.store.blobs.write_file(out))
                layer = self._gguf_layer("model.gguf", quantized)
                return [layer if x is model[0] else x for x in layers]
            bits = MLX_QUANTS.get(q)
            if bits is None:
                raise CreateError(f"unsupported quantization type {quantize}")
            spec = ModelSpec(format="safetensors",
                             tensors=[str(self.store.blobs.path(x.digest)) for x in layers if x.media_type == mf.MT_TENSOR],
                             files={x.name: str(self.store.blobs.path(x.digest))
                                    for x in layers if x.media_type == mf.MT_JSON and x.name})
            (work / "spec.json").write_text(spec.model_dump_json())
            status = f"quantizing {ft} model to {q}"
            run_worker(["quantize-mlx", "--spec", str(work / "spec.json"), "--out", str(work / "model"),
                        "--bits", str(bits)], self.progress,
                       lambda o: {"status": status, "digest": "0000000000000000000", "total": o.get("total", 0),
                                  "completed": o.get("completed", 0)} if "total" in o else None)
            for key in ("model_type", "file_type"):
                self.config.pop(key, None)
            converted = self._import_dir(work / "model")
        finally:
            self._drop_workdir(work)
        rest = [x for x in layers if x.media_type not in (mf.MT_TENSOR, mf.MT_JSON)]
        return converted + rest
