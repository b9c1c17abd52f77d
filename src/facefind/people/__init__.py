"""People: faces grouped into persons (clustering) and the user's decisions about them (persons)."""

from . import background
from .persons import People, PersonNotFound, people_fmr, people_threshold

__all__ = ["People", "PersonNotFound", "background", "people_fmr", "people_threshold"]
