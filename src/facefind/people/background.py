"""Background faces: bystanders, not people of the archive (issue 24 item 4).

A face is a background face if its shorter side is under `Settings.background_face_px`, or under
`Settings.background_face_ratio` of the largest face in its photo. On lfw_dev (6,336 photos; each
photo's subject is the face nearest the centre) 40 px and 0.7 keep 99.9% of the subjects out of it
and put most of the other faces in it (docs/design.md "Background faces"). A person whose only face
is a background face is left out of the people list by default and never suggested for review.

Data minimisation: faces under `min_template_px` (a catalog setting, `facefind people
min-template PX`) get no template at all: indexing drops them before embedding.
"""

from __future__ import annotations

import dataclasses

from ..catalog import Catalog
from ..catalog import persons as store
from ..limits import MIN_TEMPLATE_PX
from ..settings import Settings

MIN_TEMPLATE_KEY = "min_template_px"


def is_background(size_px: float, largest_in_photo: float, settings: Settings) -> bool:
    return (
        size_px < settings.background_face_px or size_px < settings.background_face_ratio * largest_in_photo
    )


def persons(catalog: Catalog, model_id: str, settings: Settings) -> set[int]:
    """Persons whose only face is a background face."""
    return {
        int(person)
        for person, size, largest in store.single_face_persons(catalog, model_id)
        if is_background(size, largest, settings)
    }


def faces(catalog: Catalog, model_id: str, settings: Settings, face_ids: list[int]) -> set[int]:
    """Which of `face_ids` are background faces (for a review queue: never suggested)."""
    return {
        int(face)
        for face, size, largest in store.face_sizes(catalog, model_id, face_ids)
        if is_background(size, largest, settings)
    }


def with_min_template(catalog: Catalog, settings: Settings) -> Settings:
    """`settings` with the catalog's minimum template size (unless they set one themselves)."""
    if settings.min_template_px:
        return settings
    stored = int(catalog.get_setting(MIN_TEMPLATE_KEY, "0"))
    return dataclasses.replace(settings, min_template_px=stored) if stored else settings


def set_min_template(catalog: Catalog, px: int) -> None:
    MIN_TEMPLATE_PX.check(px)
    catalog.set_setting(MIN_TEMPLATE_KEY, str(int(px)))
