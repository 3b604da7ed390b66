"""tests/fuzz: load the fuzzing profile (fuzzing.py) before any property runs."""

import fuzzing  # noqa: F401  (registers and loads the hypothesis profile)
