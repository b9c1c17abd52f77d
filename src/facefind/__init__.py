"""facefind: self-hosted, consent-first face search.

import facefind
ff = facefind.open("photos.db")
ff.index("~/Pictures")
result = ff.search("me.jpg")
"""

from .calibration import Calibration
from .engine import FaceFind, open
from .errors import FacefindError, ImageError, ModelUnavailable, NoFaceError
from .results import IndexReport, Match, SearchResult, Verification
from .settings import Settings

__all__ = [
    "Calibration",
    "FaceFind",
    "FacefindError",
    "ImageError",
    "IndexReport",
    "Match",
    "ModelUnavailable",
    "NoFaceError",
    "SearchResult",
    "Settings",
    "Verification",
    "open",
]
__version__ = "0.1.0"
