"""The stand-in policy backend (tests/integration/webhook/standins.py) in its own process, for the bench.

``python bench/policy_backend_target.py PORT`` (stands in for the reference backend until it lands).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import uvicorn
    from tests.integration.webhook.standins import PolicyBackend

    uvicorn.run(
        PolicyBackend().app(), host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False
    )


if __name__ == "__main__":
    main()
