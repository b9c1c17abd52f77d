"""facefind: self-hosted, consent-first face search.

Photos are indexed into a collection with an owner, a lawful basis and a retention period, and
every search states its purpose (kept in the audit log). Indexing runs worker processes, which
do not import the calling script (a main guard is good practice, not required)::

    import facefind

    def main() -> None:
        with facefind.open("photos.db", purpose="family album") as ff:
            if "family" not in {c.name for c in ff.collections()}:
                ff.create_collection("family", owner="me", basis="own", retention="10y")
            ff.index("~/Pictures", collection="family")
            result = ff.search("me.jpg", top_k=10)  # the purpose given to open()
            for face in result.faces:
                for match in face.matches:
                    print(match.path, match.similarity, match.fpir)

    if __name__ == "__main__":
        main()

The README's Python example is run by tests/test_readme.py; this one is the same API.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import FacefindError, ImageError, ModelUnavailable, NoFaceError
from .settings import Settings

if TYPE_CHECKING:
    from .calibration import Calibration
    from .engine import FaceFind, open
    from .results import IndexReport, Match, SearchResult, Verification

# Imported on first use: indexing's worker processes import `facefind.analysis`, which must not
# pay for the catalog, the service and their libraries (half a second of CPU a worker).
_LAZY = {
    "Calibration": ".calibration",
    "FaceFind": ".engine",
    "open": ".engine",
    "IndexReport": ".results",
    "Match": ".results",
    "SearchResult": ".results",
    "Verification": ".results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facefind' has no attribute {name!r}")


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
