"""The ``riskstream`` command. Every option also reads the environment variable shown in --help.

The commands live by what they are for: :mod:`.running` (broker, topics, worker, replay),
:mod:`.analysts` (user, alerts, decide, policy), :mod:`.evaluating` (evaluate, simulate, demo).
"""

from agents.cli import analysts, evaluating, running  # noqa: F401  (they register commands)
from agents.cli.base import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
