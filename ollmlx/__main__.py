import sys

from ollmlx.cli.main import main

sys.exit(main())
