"""Nearest-neighbour search over face embeddings: FAISS indexes kept in step with the catalog."""

from .faiss_index import KINDS, FaissIndex, Rows
from .store import IndexPolicy, VectorStore

__all__ = ["KINDS", "FaissIndex", "IndexPolicy", "Rows", "VectorStore"]
