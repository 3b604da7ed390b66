"""Hugging Face repositories through `huggingface_hub` (so HF_ENDPOINT, HF_TOKEN, HF_HOME /
HF_HUB_CACHE, HF_HUB_OFFLINE and its resumable, locked cache all apply as they do for every other
tool on the machine).

`hf.co/<org>/<repo>[:<tag>]`:
- a GGUF repository: the tag picks the file by quantization (`:Q4_K_M`, `:Q8_0`, ...); `latest`
  means Q4_K_M, else the smallest 4-bit file, else the smallest file;
- an MLX / safetensors repository (config.json + *.safetensors): config, weights and tokenizer
  files are fetched; a tag other than `latest` is a revision (branch, tag or commit).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollmlx.errors import OllmlxError

HF_HOSTS = frozenset({"hf.co", "huggingface.co"})
DEFAULT_QUANT = "Q4_K_M"
# files of an MLX/HF model directory that become json layers (everything but the weights)
MODEL_DIR_FILES = re.compile(
    r"^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json"
    r"|added_tokens\.json|chat_template\.json|chat_template\.jinja|tokenizer\.model|vocab\.json|vocab\.txt"
    r"|merges\.txt|preprocessor_config\.json|processor_config\.json|model\.safetensors\.index\.json"
    r"|[^/]*\.safetensors)$")
SPLIT_GGUF = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)


class HFError(OllmlxError):
    status = 500


class Cancelled(Exception):
    """Raised inside huggingface_hub's download loop when the pull was abandoned."""


@dataclass
class RepoFile:
    name: str
    size: int
    sha256: str | None = None  # LFS files carry their sha256; small git files do not

    @property
    def digest(self) -> str | None:
        return f"sha256:{self.sha256}" if self.sha256 else None


@dataclass
class RepoListing:
    repo_id: str
    commit: str
    files: list[RepoFile] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    @property
    def ggufs(self) -> list[RepoFile]:
        return [f for f in self.files if f.name.lower().endswith(".gguf")
                and not f.name.rsplit("/", 1)[-1].lower().startswith("mmproj")]

    @property
    def is_model_dir(self) -> bool:
        names = {f.name for f in self.files}
        return "config.json" in names and any(n.endswith(".safetensors") for n in names)


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """huggingface_hub's exceptions as our errors, with Ollama's text for a missing model."""
    from huggingface_hub import errors as hf

    try:
        yield
    except hf.GatedRepoError as exc:
        raise HFError(f"{repo_id} is gated: accept its terms on Hugging Face and set HF_TOKEN") from exc
    except hf.RepositoryNotFoundError as exc:
        raise HFError("pull model manifest: file does not exist") from exc
    except hf.RevisionNotFoundError as exc:
        raise HFError(f"pull model manifest: revision not found in {repo_id}") from exc
    except hf.RemoteEntryNotFoundError as exc:
        raise HFError(f"{repo_id}: file not found: {exc}") from exc
    except hf.OfflineModeIsEnabled as exc:
        raise HFError(f"{repo_id}: Hugging Face is offline (HF_HUB_OFFLINE) and the files are not cached") from exc
    except hf.HfHubHTTPError as exc:
        raise HFError(f"{repo_id}: {str(exc).splitlines()[0]}") from exc
    except hf.LocalEntryNotFoundError as exc:
        raise HFError(f"{repo_id}: cannot reach Hugging Face and the files are not cached") from exc
    except (HFError, Cancelled):
        raise
    except Exception as exc:  # transport errors of the Hub's HTTP stack, disk errors, bad answers
        raise HFError(f"{repo_id}: {exc or type(exc).__name__}") from exc


def listing(repo_id: str, revision: str | None = None) -> RepoListing:
    """Files (with sizes and LFS sha256) of a model repository at a revision."""
    from huggingface_hub import HfApi

    with hub_errors(repo_id):
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    files = []
    for s in info.siblings or []:
        lfs = s.lfs
        sha = lfs.sha256 if lfs is not None else None
        size = s.size if s.size is not None else (lfs.size if lfs is not None else 0)
        files.append(RepoFile(s.rfilename, int(size or 0), sha))
    return RepoListing(repo_id, info.sha or revision or "main", files, list(info.tags or []))


def quant_of(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1][: -len(".gguf")]
    m = re.search(r"(?:^|[-_.])((?:I?Q\d[A-Z0-9_]*)|BF16|F16|F32)$", stem, re.IGNORECASE)
    return m.group(1).upper() if m else ""


def choose_gguf(repo: RepoListing, quant: str | None) -> RepoFile:
    """The GGUF file for `:<quant>` (or the default choice for `latest`)."""
    files = repo.ggufs
    if not files:
        raise HFError(f"{repo.repo_id} has no GGUF files and no config.json + safetensors")
    if quant and quant.lower() != "latest":
        want = quant.upper()
        hits = [f for f in files if quant_of(f.name) == want]
        if not hits:
            have = ", ".join(sorted({quant_of(f.name) or f.name for f in files}))
            raise HFError(f'{repo.repo_id} has no GGUF file for quantization "{quant}" (available: {have})')
        chosen = min(hits, key=lambda f: f.size)
    else:
        by_quant = [f for f in files if quant_of(f.name) == DEFAULT_QUANT]
        four_bit = [f for f in files if re.match(r"I?Q4", quant_of(f.name))]
        chosen = min(by_quant or four_bit or files, key=lambda f: f.size)
    if SPLIT_GGUF.search(chosen.name):
        raise HFError(f"{chosen.name}: split GGUF files are not supported yet")
    return chosen


def model_dir_files(repo: RepoListing) -> list[RepoFile]:
    return [f for f in repo.files if MODEL_DIR_FILES.match(f.name)]


def _progress_class(on_bytes: Callable[[int], None], cancel: threading.Event) -> type:
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Progress(hf_tqdm):
        """Reports bytes to the pull and stops the download when the pull was abandoned."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            on_bytes(int(getattr(self, "n", 0) or 0))  # bytes resumed from an .incomplete file

        def update(self, n: float | None = 1) -> bool | None:
            if cancel.is_set():
                raise Cancelled("pull cancelled")
            if n:
                on_bytes(int(n))
            return super().update(n)

    return Progress


def download(repo: RepoListing, file: RepoFile, on_bytes: Callable[[int], None],
             cancel: threading.Event) -> Path:
    """Fetch one file into the Hugging Face cache (resuming an `.incomplete` one) and return its
    path there. Pinned to the listing's commit so every file comes from the same revision."""
    from huggingface_hub import hf_hub_download

    with hub_errors(repo.repo_id):
        path = hf_hub_download(repo.repo_id, file.name, revision=repo.commit,
                               tqdm_class=_progress_class(on_bytes, cancel))
    return Path(path)
