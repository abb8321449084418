"""`rewardflow ui`: a local web page to dial each reward of any pipeline rewardflow loads.

The page (assets/ui/index.html) talks JSON to a small standard-library HTTP server
(``server.serve``) in front of a ``Studio`` (one pipeline, one generation at a time)."""

from .request import Limits, RequestError, UIRequest, parse_request
from .server import serve
from .studio import Busy, Studio

__all__ = ["Busy", "Limits", "RequestError", "Studio", "UIRequest", "parse_request", "serve"]
