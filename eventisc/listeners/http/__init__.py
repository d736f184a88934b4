"""The ``http`` kind: one HTTP request per event, sent with urllib3 (or requests, for the
options only requests honours).

Importing this package registers the kind. Its modules, each importing only those after it:

- :mod:`.listener`: :class:`HttpListener`: options, the rendered request, delivery;
- :mod:`.pool`: the listener's urllib3 pools (the usual path);
- :mod:`.session`: the listener's requests session (the requests path);
- :mod:`.redirects`: following redirects (method, body and credentials kept safe);
- :mod:`.environment`: the environment's proxies, CA bundle and netrc credentials;
- :mod:`.connection`: the connections below both clients, which bound an attempt by its
  deadline and skip informational (1xx) answers, and the bounded reading of a body;
- :mod:`.errors`: urllib3's and requests' errors (and failed answers) as eventisc's;
- :mod:`.options`: the JSON Schema of the options, their checks, the encoding of values.
"""

from __future__ import annotations

from ..base import mask_url, missing_driver

try:
    import urllib3  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_driver("http", "urllib3", "http") from exc

from .errors import parse_retry_after, translate_error  # noqa: E402
from .listener import HttpListener  # noqa: E402
from .options import (  # noqa: E402
    DEADLINE_READS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    HTTP_SCHEMA,
    MAX_REDIRECTS,
    METHODS,
    form_pairs,
)
from .redirects import REDIRECTS, SAFE_METHODS  # noqa: E402

__all__ = [
    "DEADLINE_READS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "HTTP_SCHEMA",
    "MAX_REDIRECTS",
    "METHODS",
    "REDIRECTS",
    "SAFE_METHODS",
    "HttpListener",
    "form_pairs",
    "mask_url",
    "parse_retry_after",
    "translate_error",
]
