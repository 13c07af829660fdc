"""Container HEALTHCHECK: exit 0 when the service in TT_SERVICE answers.

gRPC services: the standard health service ("" = the process serves) on
<SERVICE>_GRPC_PORT. The gateway: GET /healthz on GATEWAY_HTTP_PORT.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.request


def main() -> int:
    service = os.environ.get("TT_SERVICE", "")
    if service == "gateway":
        port = os.environ.get("GATEWAY_HTTP_PORT", "8080")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
                return 0 if resp.status == 200 else 1
        except OSError:
            return 1
    port = os.environ.get(f"{service.upper()}_GRPC_PORT", "50051")
    from .grpc_client import check_health

    return 0 if asyncio.run(check_health(f"127.0.0.1:{port}", deadline_s=3)) else 1


if __name__ == "__main__":
    sys.exit(main())
