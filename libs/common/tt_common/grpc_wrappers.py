"""Per-method handler wrappers for gRPC server interceptors, built once per method.

An interceptor that wraps a unary handler (metrics, error mapping, tracing) would
otherwise build a new wrapper, and look up everything the wrapper needs, on every
call. Handlers do not change once the server runs; a method whose handler did
change gets its wrapper built anew.
"""

from __future__ import annotations

from typing import Any

# grpc's typing has no attributes on RpcMethodHandler (the namedtuple it really is).
Handler = Any


class MethodWrappers:
    """method -> (the handler it wraps, its wrapper)."""

    def __init__(self) -> None:
        self._by_method: dict[str, tuple[Handler, Handler]] = {}

    def lookup(self, method: str, handler: Handler) -> Handler | None:
        """The wrapper built for this method's `handler`, or None when there is none yet."""
        cached = self._by_method.get(method)
        return cached[1] if cached is not None and cached[0] is handler else None

    def store(self, method: str, handler: Handler, wrapper: Handler) -> Handler:
        self._by_method[method] = (handler, wrapper)
        return wrapper
