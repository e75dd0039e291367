"""``python -m migrate`` and the ``cognito-migrate`` console script."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI; an interrupt while it is still loading exits 130 quietly."""
    try:
        from migrate.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
