"""CORS for the web page, with the allowed origins kept in MongoDB's ``origins`` collection.

The origins are read once at start. If MongoDB cannot be reached then, the service still starts
(``/health`` reports the problem) and the read is retried on later cross-origin requests, at most
every ``retry_seconds``: a restart is not needed once the database is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pymongo.errors import PyMongoError
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

METHODS = ("GET", "PUT", "POST", "DELETE")
HEADERS = ("Content-Type", "Origin", "Accept")


class OriginRegistry:
    """The set of allowed origins, loaded from a collection of ``{"origin": "http://..."}`` documents."""

    def __init__(
        self, collection: Any, retry_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._collection = collection
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._origins: frozenset[str] | None = None
        self._last_attempt = float("-inf")

    def load(self) -> bool:
        """Read the collection now; return whether it worked."""
        with self._lock:
            self._last_attempt = self._clock()
            try:
                docs = list(self._collection.find({}, {"origin": 1, "_id": 0}))
            except PyMongoError as exc:
                log.warning("could not read CORS origins from MongoDB (will retry): %s", exc)
                return False
            self._origins = frozenset(str(d["origin"]).rstrip("/") for d in docs if d.get("origin"))
        log.info("CORS origins: %s", ", ".join(sorted(self._origins)) or "(none)")
        return True

    def allows(self, origin: str) -> bool:
        if self._origins is None and self._clock() - self._last_attempt >= self._retry_seconds:
            self.load()
        return self._origins is not None and origin.rstrip("/") in self._origins


class DatabaseCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, asking an OriginRegistry instead of a fixed list."""

    def __init__(self, app: ASGIApp, registry: OriginRegistry) -> None:
        super().__init__(
            app,
            allow_origins=(),
            allow_methods=METHODS,
            allow_headers=HEADERS,
            allow_credentials=True,
        )
        self.registry = registry

    def is_allowed_origin(self, origin: str) -> bool:
        return self.registry.allows(origin)
