"""``python -m hashmatch.client``: the staff CLI, as the ``hashmatch`` script."""

import sys

from hashmatch.client.cli import main

sys.exit(main())
