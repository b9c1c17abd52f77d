"""Pluggable recognizers: register an operator's ONNX model, list, switch to it, remove it.

The built-in SFace (`sface-2021dec`) is always there and is the default. A registered model is
checked before anything is stored (sha256, readable ONNX, one dummy forward pass giving a single
vector); its file stays where the operator keeps it (licensed models are theirs to place; a
copy would be a second file to secure and erase) and its sha256 is checked again each time it
is loaded, so a swapped or damaged file is refused rather than silently producing other
embeddings.

Embeddings of different models are never compared: every face row holds the embedding of one
model (faces.model_id), and search, verify, people and opt-outs only ever read the active
model's. Switching (`use`) first embeds every stored face with the new model into
face_embeddings, in committed batches (interrupt and run again to continue), then swaps in one
transaction: the old embeddings move to face_embeddings (switching back is quick), the new ones
into faces, persons follow, and the vector index is rebuilt. A face whose photo is missing or
changed keeps its old embedding, is listed as an error and is not searchable with the new model
until the photo is back and `use` runs again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from .accountability import erasure
from .catalog import Catalog, now
from .catalog import recognizers as store
from .errors import ImageError, RecognizerError
from .faces import Detection, FaceBackend, load_backend
from .faces.onnx import COLORS, RecognizerSpec, probe, read_net, sha256_file
from .faces.opencv import FLIP_SUFFIX, MIRROR_SUFFIX
from .faces.opencv import MODEL_ID as BUILTIN
from .images import decode_image
from .limits import MODEL_INPUT, MODEL_MEAN, MODEL_STD
from .results import FileError
from .settings import Settings, vectors_dir

if TYPE_CHECKING:
    from .engine import FaceFind

Progress = Callable[[int, int], None]
ACTIVE_KEY = "recognizer"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
BATCH_IMAGES, BATCH_SECONDS, CHUNK_FACES = 64, 2.0, 2000


class Recognizer(BaseModel):
    """One recognizer this catalog can use (= `facefind models list --json`)."""

    name: str
    builtin: bool
    active: bool
    calibration: str | None  # "shipped", "own" (facefind calibrate) or None: not usable yet
    faces: int  # stored faces with an embedding of this model
    dim: int
    input_size: int
    color: str
    mean: float
    std: float
    path: str | None = None
    sha256: str | None = None
    registered_at: str | None = None
    registered_by: str | None = None


class ModelSwitch(BaseModel):
    """What `facefind models use NAME` did."""

    model: str
    previous: str
    switched: bool  # False when interrupted: run the same command again to continue
    faces: int  # stored faces in the catalog
    embedded: int  # faces embedded with the model in this run
    faces_with_model: int  # faces whose embedding in use is this model's (after the switch)
    errors: list[FileError] = []  # photos that could not be re-embedded (their faces keep the old model)
    interrupted: bool = False
    seconds: float = 0.0
    faces_per_second: float = 0.0


# Built in: SFace; SFace averaged with its mirror image (better at low FMR, twice the embedding
# time: bench/pipeline_bench.py); and that with the landmarks averaged with the mirrored face's
# (one small detection more per face). All run from the same model file.
FLIPPED = BUILTIN + FLIP_SUFFIX
MIRRORED = BUILTIN + MIRROR_SUFFIX
BUILTINS = (BUILTIN, FLIPPED, MIRRORED)
# What a catalog created now indexes with: mirrored landmarks and flip averaging miss fewer people
# at search's decision (lfw_dev, issue 22's protocol; docs/benchmarks.md, "The default recognizer").
# A catalog keeps the recognizer it was made with (its faces' embeddings are of that model) until
# `facefind models use` switches it; catalogs made before this was recorded use BUILTIN.
NEW_CATALOGS = MIRRORED


# reading the registry ----------------------------------------------------------------------------
def active(catalog: Catalog) -> str:
    return catalog.get_setting(ACTIVE_KEY, BUILTIN)


def spec(catalog: Catalog, name: str) -> RecognizerSpec | None:
    """The registration of `name`; None for the built-in model; an error for an unknown name."""
    if name in BUILTINS:
        return None
    row = store.row(catalog, name)
    if row is None:
        known = ", ".join([*BUILTINS, *_names(catalog)])
        raise RecognizerError(
            f"no recognizer named {name!r}; this catalog knows: {known} (`facefind models list`)"
        )
    return RecognizerSpec(
        model_id=row.model_id,
        path=row.path,
        sha256=row.sha256,
        input_size=row.input_size,
        dim=row.dim,
        color=row.color,
        mean=row.mean,
        std=row.std,
    )


def builtin_settings(name: str, settings: Settings | None = None) -> Settings:
    """`settings` (default ones if None) embedding as the built-in recognizer `name` does."""
    if name not in BUILTINS:
        raise RecognizerError(f"{name!r} is not built in; built in are {', '.join(BUILTINS)}")
    return replace(
        settings or Settings(), flip_average=name in (FLIPPED, MIRRORED), mirror_landmarks=name == MIRRORED
    )


def settings_for(catalog: Catalog, settings: Settings, name: str) -> Settings:
    own = spec(catalog, name)
    if own is None:
        return replace(builtin_settings(name, settings), recognizer=None)
    return replace(settings, recognizer=own, flip_average=False, mirror_landmarks=False)


def new_catalog_settings() -> dict[str, str]:
    """The settings a new catalog starts with: its recognizer."""
    return {ACTIVE_KEY: NEW_CATALOGS}


def with_active(catalog: Catalog, settings: Settings) -> Settings:
    """`settings` running the catalog's active recognizer (unless they name one themselves)."""
    if settings.recognizer is not None:
        return settings
    name = active(catalog)
    return settings if name == BUILTIN else settings_for(catalog, settings, name)


def _names(catalog: Catalog) -> list[str]:
    return store.names(catalog)


def all_(catalog: Catalog) -> list[Recognizer]:
    current = active(catalog)
    rows, own, counts = store.registry(catalog)
    out = [
        Recognizer(
            name=name,
            builtin=True,
            active=current == name,
            calibration="own" if name in own else "shipped",
            faces=counts.get(name, 0),
            dim=128,
            input_size=112,
            color="rgb",
            mean=0.0,
            std=1.0,
        )
        for name in BUILTINS
    ]
    for r in rows:
        out.append(
            Recognizer(
                name=r.model_id,
                builtin=False,
                active=current == r.model_id,
                calibration="own" if r.model_id in own else None,
                faces=counts.get(r.model_id, 0),
                dim=r.dim,
                input_size=r.input_size,
                color=r.color,
                mean=r.mean,
                std=r.std,
                path=r.path,
                sha256=r.sha256,
                registered_at=r.registered_at,
                registered_by=r.registered_by,
            )
        )
    return out


def get(catalog: Catalog, name: str) -> Recognizer:
    spec(catalog, name)  # unknown names fail with the list of known ones
    return next(r for r in all_(catalog) if r.name == name)


# registering -------------------------------------------------------------------------------------
def register(
    catalog: Catalog,
    path: str | Path,
    *,
    name: str,
    input_size: int,
    sha256: str,
    color: str,
    mean: float,
    std: float,
    actor: str,
) -> Recognizer:
    """Check an ONNX recognizer thoroughly and only then record it; nothing is written on failure."""
    if not NAME.fullmatch(name):
        raise RecognizerError(
            f"--name {name!r}: use 1-40 characters of a-z, 0-9, '.', '_', '-', starting with a letter "
            f"or digit (e.g. arcface-r50); the name is stored beside every embedding of the model."
        )
    if name in BUILTINS or name in _names(catalog):
        raise RecognizerError(
            f"a recognizer named {name!r} already exists; choose another --name "
            f"(`facefind models list` shows the names in use)."
        )
    MODEL_INPUT.check(input_size)
    if color not in COLORS:
        raise RecognizerError(f"--color must be rgb or bgr, got {color!r}")
    MODEL_MEAN.check(mean)
    MODEL_STD.check(std)
    expected = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise RecognizerError(
            f"--sha256 {sha256!r} is not a SHA-256 (64 hex digits). Give the checksum the model's "
            f"publisher lists (`sha256sum FILE` shows the file's own, to compare)."
        )
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise RecognizerError(f"{file}: no such file. Give the path of the recognizer's .onnx file.")
    found = sha256_file(file)
    if found != expected:
        raise RecognizerError(
            f"{file} has sha256 {found}, but --sha256 says {expected}: it is not the file you meant "
            f"(damaged or swapped download?). Nothing was registered. Get the file again from its "
            f"publisher and compare with the published checksum."
        )
    dim = probe(read_net(file), file, input_size)
    store.insert(
        catalog,
        model_id=name,
        path=str(file),
        sha256=found,
        input_size=input_size,
        dim=dim,
        color=color,
        mean=float(mean),
        std=float(std),
        registered_at=now(),
        registered_by=actor,
    )
    return get(catalog, name)


def remove(catalog: Catalog, name: str, vectors_folder: Path | None) -> Recognizer:
    """Forget a registered model with every embedding, calibration and index it left."""
    gone = get(catalog, name)
    if gone.builtin:
        raise RecognizerError(f"{name} is the built-in recognizer; it cannot be removed.")
    if gone.active:
        raise RecognizerError(
            f"{name} is the recognizer in use; switch to another first (`facefind models use {BUILTIN}`)."
        )
    stranded = store.delete(catalog, name)
    if stranded:
        raise RecognizerError(
            f"{stranded} stored face(s) hold only {name} embeddings (their photos could not be "
            f"re-embedded when the catalog switched away from it). Restore those photos and run "
            f"`facefind models use {active(catalog)}` again, or erase them (`facefind erase image`); "
            f"then remove {name}."
        )
    catalog.set_setting(f"people_upto:{name}", "0")
    if vectors_folder is not None:
        shutil.rmtree(vectors_folder / name, ignore_errors=True)
    erasure.scrub_file(catalog)  # no bytes of the deleted embeddings stay in free pages or the WAL
    return gone


# switching -----------------------------------------------------------------------------------------
def check_switch(catalog: Catalog, name: str, people_max_fmr: float) -> None:
    """Refuse a switch that would leave the catalog unable to decide or to honour opt-outs."""
    spec(catalog, name)  # an unknown name is an error listing the known ones
    table = catalog.load_calibration(name)
    if name not in BUILTINS and table is None:
        raise RecognizerError(
            f"{name} has no calibration yet, so facefind cannot turn its similarities into "
            f"false-match rates. Run `facefind calibrate LABELLED_DIR --model {name}` first (PERSON/IMAGE "
            f"folders; {1 / people_max_fmr:,.0f}+ different-person pairs, e.g. 12 people x 13 photos)."
        )
    if table is not None and 1 / table["impostor_pairs"] > people_max_fmr:
        raise RecognizerError(
            f"{name}'s calibration ({table['impostor_pairs']} different-person pairs from {table['source']}) "
            f"cannot resolve the false-match rate {people_max_fmr:g} at which indexing groups faces into "
            f"people; calibrate it on a larger labelled set ({1 / people_max_fmr:,.0f}+ pairs): "
            f"`facefind calibrate LABELLED_DIR --model {name}`."
        )
    others = store.optouts_of_other_models(catalog, name)
    if others:
        raise RecognizerError(
            f"{others} opt-out(s) are kept as templates of another model, and facefind keeps no photo "
            f"to re-embed them with {name}: after a switch, new photos of those people would no longer "
            f"be refused at indexing. Switching with opt-outs recorded is not supported yet; "
            f"`facefind optout list` shows them."
        )


def reembed(
    catalog: Catalog,
    backend: FaceBackend,
    settings: Settings,
    on_progress: Progress | None = None,
) -> tuple[int, list[FileError], bool]:
    """Embed every stored face that lacks an embedding of `backend`'s model into face_embeddings.

    Faces are cut again from their photos at the stored landmarks (no new detection, so face ids,
    boxes and people stay). Committed in batches: returns (faces embedded, errors, interrupted).
    """
    model_id = backend.model_id
    total, done, embedded = store.pending_count(catalog, model_id), 0, 0
    errors: list[FileError] = []
    batch: list[dict] = []
    images_in_batch, last_flush = 0, time.perf_counter()

    def flush() -> None:
        nonlocal images_in_batch, last_flush
        store.add_embeddings(catalog, batch)
        batch.clear()
        images_in_batch, last_flush = 0, time.perf_counter()

    if on_progress:
        on_progress(0, total)
    after = 0
    try:
        while True:
            rows = store.pending(catalog, model_id, after, CHUNK_FACES)
            if not rows:
                break
            after = rows[-1].id
            for group in _by_image(rows):
                error, vectors = _embed_image(group, backend, settings)
                done += len(group)
                if error:
                    errors.append(FileError(path=group[0].path, error=error))
                else:
                    embedded += len(group)
                    batch += [
                        {"face_id": r.id, "model_id": model_id, "embedding": v.tobytes()}
                        for r, v in zip(group, vectors, strict=True)
                    ]
                    images_in_batch += 1
                if images_in_batch >= BATCH_IMAGES or time.perf_counter() - last_flush > BATCH_SECONDS:
                    flush()
                if on_progress:
                    on_progress(done, total)
    except KeyboardInterrupt:
        flush()
        return embedded, errors, True
    flush()
    return embedded, errors, False


def _by_image(rows: list[Any]) -> list[list[Any]]:
    groups: list[list[Any]] = []
    for r in rows:  # an image's faces get consecutive ids
        if groups and groups[-1][0].image_id == r.image_id:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _embed_image(group: list[Any], backend: FaceBackend, settings: Settings) -> tuple[str | None, np.ndarray]:
    path = Path(group[0].path)
    try:
        data = path.read_bytes()
    except OSError as err:
        return f"cannot read the photo ({err.strerror}); its faces keep their old embeddings", np.zeros(0)
    if group[0].sha256 and hashlib.sha256(data).hexdigest() != group[0].sha256:
        return (
            "the photo changed since it was indexed; run `facefind index` on it, then this command again",
            np.zeros(0),
        )
    try:
        image = decode_image(data, settings, name=path.name)
    except ImageError as err:
        return str(err), np.zeros(0)
    detections = [
        Detection(
            box=(r.x, r.y, r.w, r.h),
            landmarks=np.asarray(json.loads(r.landmarks), np.float32).reshape(5, 2),
            score=r.det_score,
        )
        for r in group
    ]
    vectors = backend.embed([backend.align(image, d) for d in detections])
    return None, np.ascontiguousarray(vectors, np.float32)


def swap(catalog: Catalog, model_id: str) -> None:
    """Make `model_id` the active model: faces take its embeddings, persons follow (one transaction)."""
    previous = active(catalog)
    store.swap(catalog, model_id)
    # Clustering continues from where the previous model left off.
    upto = catalog.get_setting(f"people_upto:{previous}", "0")
    catalog.set_setting(f"people_upto:{model_id}", upto)
    catalog.set_setting(ACTIVE_KEY, model_id)


class Models:
    """`ff.models`: the recognizers of a catalog. `.all()`, `.add(...)`, `.use(name)`, `.remove(name)`."""

    def __init__(self, ff: FaceFind) -> None:
        self._ff = ff

    @property
    def active(self) -> str:
        return active(self._ff.catalog)

    def all(self) -> list[Recognizer]:
        return all_(self._ff.catalog)

    def get(self, name: str) -> Recognizer:
        return get(self._ff.catalog, name)

    def settings_for(self, name: str) -> Settings:
        base = replace(self._ff.settings, recognizer=None)
        return settings_for(self._ff.catalog, base, name)

    def add(
        self,
        path: str | Path,
        *,
        name: str,
        sha256: str,
        input_size: int = 112,
        color: str = "rgb",
        mean: float = 127.5,
        std: float = 127.5,
    ) -> Recognizer:
        """Register an ONNX recognizer (checked first; nothing is stored if a check fails).

        Defaults are ArcFace-style preprocessing: RGB, (x - 127.5) / 127.5.
        """
        ff = self._ff
        added = register(
            ff.catalog,
            path,
            name=name,
            input_size=input_size,
            sha256=sha256,
            color=color,
            mean=mean,
            std=std,
            actor=ff.actor,
        )
        ff.audit.record(ff.actor, "models", {"added": added.name, "path": added.path, "sha256": added.sha256})
        return added

    def use(self, name: str, *, on_progress: Progress | None = None) -> ModelSwitch:
        """Switch the catalog to recognizer `name`, re-embedding every stored face (resumable)."""
        ff = self._ff
        started = time.perf_counter()
        previous = self.active
        check_switch(ff.catalog, name, ff.settings.people_max_fmr)
        settings = self.settings_for(name)
        backend = ff.backend if name == previous else load_backend(settings)  # checks the file
        embedded, errors, interrupted = reembed(ff.catalog, backend, settings, on_progress)
        if not interrupted:
            swap(ff.catalog, name)
            ff._switched(settings, backend)
        seconds = time.perf_counter() - started
        total = store.count_faces(ff.catalog)
        result = ModelSwitch(
            model=name,
            previous=previous,
            switched=not interrupted,
            faces=total,
            embedded=embedded,
            faces_with_model=ff.catalog.face_count(name),
            errors=errors,
            interrupted=interrupted,
            seconds=round(seconds, 2),
            faces_per_second=round(embedded / max(seconds, 1e-9), 1),
        )
        if not interrupted:
            ff.audit.record(
                ff.actor,
                "models",
                {"used": name, "previous": previous, "embedded": embedded, "errors": len(errors)},
            )
        return result

    def remove(self, name: str) -> Recognizer:
        """Forget a registered recognizer and erase every embedding it made."""
        ff = self._ff
        gone = remove(ff.catalog, name, vectors_dir(ff.db))
        ff.audit.record(ff.actor, "models", {"removed": name, "sha256": gone.sha256})
        return gone
