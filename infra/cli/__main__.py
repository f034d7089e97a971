"""``python -m infra.cli``: the same as the ``lead-nurture`` console script."""

import sys

from infra.cli.main import main

sys.exit(main())
