"""Run ollmlx's CUDA kernel sources on this CPU against float32 (tests/emulators/cuda.py says how).

    python bench/cuda_emulate.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emulators.cuda import main

if __name__ == "__main__":
    main()
