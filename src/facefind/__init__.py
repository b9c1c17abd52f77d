"""facefind: self-hosted, consent-first face search.

Photos are indexed into a collection with an owner, a lawful basis and a retention period, and
every search states its purpose (kept in the audit log). Indexing spawns worker processes that
import the calling script, so a script keeps its work under a main guard::

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
