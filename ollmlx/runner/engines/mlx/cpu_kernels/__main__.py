"""`python -m ollmlx.runner.engines.mlx.cpu_kernels`: build the CPU kernels now (scripts/setup.sh)."""

import sys

from ollmlx.runner.engines.mlx.cpu_kernels.build import main

sys.exit(main())
