"""A stranger searched in a real catalog of 4k faces gets "no match" (issue 22).

The catalog holds the real embeddings (the recognizer of new catalogs) of every lfw_dev photo of
the people with two or more photos (4.3k faces of 849 people), catalogued directly
(tests/synthetic.add_image: real vectors, made-up boxes) so the test takes seconds; the
embeddings are computed once with the product's pipeline (evaluate.load_labelled) and cached in
$FACEFIND_TEST_CACHE (default /tmp/facefind-test-cache; the first run takes minutes). Strangers,
the people with one photo, are searched through `FaceFind.search` with their photo file, at the
default decision (FPIR 0.01)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

import facefind
from facefind.evaluate import load_labelled
from facefind.faces import load_backend
from facefind.recognizers import NEW_CATALOGS, builtin_settings

from .conftest import DATASETS, new_catalog
from .synthetic import add_image

LFW = DATASETS / "lfw_dev"
CACHE = Path(os.environ.get("FACEFIND_TEST_CACHE", "/tmp/facefind-test-cache"))
NEW = builtin_settings(NEW_CATALOGS)
STRANGERS = 40  # the first people with one photo, by name


def _people() -> dict[str, list[Path]]:
    return {p.name: sorted(p.iterdir()) for p in sorted(LFW.iterdir()) if p.is_dir()}


def _embeddings(people: dict[str, list[Path]]) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(paths, persons, embeddings, detected) of the gallery people's photos, cached by model."""
    paths = [str(photo) for photos in people.values() if len(photos) >= 2 for photo in photos]
    cache = CACHE / f"lfw_dev-gallery-{NEW_CATALOGS}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        if [str(p) for p in z["paths"]] == paths:
            return paths, [str(p) for p in z["persons"]], z["embeddings"], z["detected"]
    root = CACHE / "lfw_dev-gallery"  # only the gallery people: links to the shared photos
    for photo in map(Path, paths):
        link = root / photo.parent.name / photo.name
        if link.is_symlink() and os.readlink(link) != str(photo):  # made from another checkout
            link.unlink(missing_ok=True)
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # made meanwhile by another test run
                link.symlink_to(photo)
    settings = NEW  # the recognizer of new catalogs (the catalog below is one)
    backend = load_backend(settings)
    labelled = load_labelled(root, settings, 2, lambda: backend)
    assert not labelled.errors, labelled.errors[:3]
    by_link = {Path(p).parent.name + "/" + Path(p).name: i for i, p in enumerate(labelled.paths)}
    order = [by_link[Path(p).parent.name + "/" + Path(p).name] for p in paths]
    persons = [labelled.persons[i] for i in order]
    embeddings, detected = labelled.embeddings[order], labelled.detected[order]
    partial = cache.with_name(f"{cache.stem}.{os.getpid()}.npz")  # whole or absent for other runs
    np.savez(
        partial, paths=np.array(paths), persons=np.array(persons), embeddings=embeddings, detected=detected
    )
    partial.replace(cache)
    return paths, persons, embeddings, detected


@pytest.fixture(scope="module")
def lfw_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    if not LFW.is_dir():
        pytest.skip(f"{LFW} not found")
    people = _people()
    paths, _, embeddings, detected = _embeddings(people)
    db = new_catalog(tmp_path_factory.mktemp("lfw4k") / "catalog.db")
    with facefind.open(db) as ff:
        for path, vector, found in zip(paths, embeddings, detected, strict=True):
            add_image(ff.catalog, path, vector[None, :] if found else np.zeros((0, len(vector)), np.float32))
        ff.people.update()  # faces are shown once clustering has checked them
    strangers = [photos[0] for photos in people.values() if len(photos) == 1][:STRANGERS]
    return db, strangers


def test_a_stranger_search_on_a_real_4k_face_catalog_returns_no_match(
    lfw_catalog: tuple[Path, list[Path]],
) -> None:
    db, strangers = lfw_catalog
    with facefind.open(db) as ff:
        results = [ff.search(photo, purpose="stranger check", face=0) for photo in strangers]
        known = ff.search(sorted((LFW / "Tony_Blair").iterdir())[0], purpose="known check", face=0)
    assert min(r.faces_searched for r in results) >= 4000
    assert all(not r.matched for r in results), [r.query for r in results if r.matched]
    # The same catalog does find someone it holds (the photo itself is catalogued).
    assert known.matched and "Tony_Blair" in known.faces[0].matches[0].path
