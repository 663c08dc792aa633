"""``python -m starloop.loop.cli``: the ``starloop`` command."""

import sys

from starloop.loop.cli.main import main

sys.exit(main())
