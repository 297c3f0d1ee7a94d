"""``python -m pex_tuner.cli``: the ``pex-tuner`` command line."""

import sys

from pex_tuner.cli import main

sys.exit(main())
