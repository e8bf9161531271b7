"""``python -m streamlog.broker.users``: see ``streamlog.broker.users.cli``."""

import sys

from streamlog.broker.users.cli import main

if __name__ == "__main__":  # imported (by tools that walk the package): do nothing
    sys.exit(main())
