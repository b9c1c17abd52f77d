"""The catalog of record: every table, and the only code that speaks SQL to it.

`core.Catalog` opens the database (SQLite, later PostgreSQL), migrates it and holds collections,
images and faces; `schema` has the tables; the modules beside them hold the queries of one
concept each (persons, consents, opt-outs, audit, keys, jobs, recognizers, erasure), which the
feature modules call.
"""

from .core import Catalog, FaceRow, KnownImage
from .schema import SCHEMA_VERSION, now

__all__ = ["SCHEMA_VERSION", "Catalog", "FaceRow", "KnownImage", "now"]
