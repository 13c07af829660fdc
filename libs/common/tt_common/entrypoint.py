"""Container entry point: `python -m tt_common.entrypoint [SERVICE]`.

One image runs every service; the service comes from the argument or from
TT_SERVICE (which the image's HEALTHCHECK reads too).
"""

from __future__ import annotations

import os
import runpy
import sys

SERVICES = ("projects", "tracking", "reporting", "invoicing", "gateway")


def main() -> None:
    service = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TT_SERVICE", "")
    if service not in SERVICES:
        raise SystemExit(f"choose a service with TT_SERVICE or an argument: one of {', '.join(SERVICES)}")
    os.environ["TT_SERVICE"] = service
    sys.argv = [service]
    runpy.run_module(service, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
