"""People: facefind's grouping of faces into persons vs Immich's DBSCAN-style rule, and its speed.

    python bench/people_bench.py [--datasets ../shared/datasets] [--sizes 10000 100000] [--json]

Quality, per labelled folder of ../shared/datasets (identity = folder name): each folder is indexed
into a fresh catalog with `facefind.open(db).index(folder)`, which groups faces incrementally as
users get it; then `people.recluster()` is scored too. Every method clusters the same faces; the
largest face of each photo is scored (pairwise and BCubed precision/recall/F1, persons found,
share unassigned). Baselines in the same run:
- Immich's rule (server/src/services/person.service.ts) with its defaults, max cosine distance 0.5
  and min faces 3. 0.5 is a distance for InsightFace buffalo_l; it is converted to SFace by the
  ratio of DeepFace's per-model thresholds, which DeepFace tunes for the same accuracy goal
  (deepface/config/threshold.py: Buffalo_L 0.55, SFace 0.593), giving 0.539; the false-match rate
  this implies on our calibration is reported beside it.
- The same rule with its best parameters *per folder* (grid over distance and min faces): a
  stricter bar than one setting for all folders, which is what facefind uses.
- The other candidates measured before choosing: exact average-linkage agglomerative clustering
  and HDBSCAN, each with its best parameter per folder.

Archive (issue 24): lfw_dev indexed once as one collection (cached in --cache), fed to a fresh
catalog in 4 shuffled batches with the incremental update after each, then re-clustered; scored on
each photo's labelled face (evaluate.labelled_face), with Immich's rule on the same embeddings.
Scale (--scale 1000000 --scale-add 10000): 10,000 new faces placed into a settled catalog of 1M
synthetic faces (built once in --cache), `people.update()` alone timed.

Speed, on face-like synthetic embeddings (as bench/index_bench.py) stored in a real SQLite catalog:
full re-cluster of 10k and 100k faces, then the incremental update after adding 1,000 new faces
(new photos of stored people and some newcomers) to the largest catalog.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
import facefind
import index_bench
import machine
from facefind.catalog.schema import face_persons, faces, images, now
from facefind.evaluate import clustering_scores

ROOT = Path(__file__).resolve().parents[1]
IMMICH_MAX_DISTANCE, IMMICH_MIN_FACES = 0.5, 3
BUFFALO_L_DEEPFACE, SFACE_DEEPFACE = 0.55, 0.593


# --- baselines and candidates ---------------------------------------------------------------
def immich_dbscan(embeddings: np.ndarray, max_distance: float, min_faces: int) -> np.ndarray:
    """Immich's handleRecognizeFaces, face by face in order (exact search).

    A face's matches are its `min_faces` nearest faces (itself included) within `max_distance`.
    With one match only (itself) it is skipped; with fewer than `min_faces` it is not a core
    face and waits for a second pass. It joins the first match that has a person, else the
    nearest face with a person within `max_distance`; a core face with neither starts a person.
    """
    x = np.asarray(embeddings, np.float32)
    labels = np.full(len(x), -1, np.int64)
    min_sim = 1.0 - max_distance
    next_person = 0
    deferred: list[int] = []

    def recognise(i: int, second_pass: bool) -> None:
        nonlocal next_person
        sims = x @ x[i]
        order = np.argsort(-sims, kind="stable")
        near = order[sims[order] >= min_sim]
        matches = near[:min_faces]
        if min_faces > 1 and len(matches) <= 1:
            return
        core = len(matches) >= min_faces
        if not core and not second_pass:
            deferred.append(i)
            return
        with_person = [m for m in matches if labels[m] >= 0]
        person = labels[with_person[0]] if with_person else -1
        if person < 0:
            assigned = near[labels[near] >= 0]
            if len(assigned):
                person = labels[assigned[0]]
        if core and person < 0:
            person, next_person = next_person, next_person + 1
        labels[i] = person

    for i in range(len(x)):
        recognise(i, False)
    for i in deferred:
        recognise(i, True)
    return labels


def average_linkage(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(embeddings) < 2:
        return np.zeros(len(embeddings), np.int64)
    tree = linkage(np.asarray(embeddings, np.float64), "average", metric="cosine")
    return fcluster(tree, 1.0 - threshold, "distance") - 1


def hdbscan(embeddings: np.ndarray, min_cluster_size: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=min_cluster_size, metric="cosine", copy=True).fit_predict(embeddings)


def best_of(run, grid, x, truth, scored) -> dict:  # type: ignore[no-untyped-def]
    best: dict = {}
    for params in grid:
        scores = clustering_scores(run(x, *params)[scored], truth)
        if not best or scores["bcubed_f1"] > best["bcubed_f1"]:
            best = {**scores, "params": list(params)}
    return best


# --- quality on real photos -------------------------------------------------------------------
def folder_quality(folder: Path, workdir: Path) -> dict:
    ff = facefind.open(workdir / f"{folder.name}.db")
    ff.create_collection("default", owner="benchmark", basis="own", retention="30d")
    report = ff.index(folder)
    ids, x, _, _, _ = ff.catalog.faces_after(ff.backend.model_id, 0, 2**62)
    with ff.catalog.engine.connect() as conn:
        rows = conn.execute(sa.select(faces.c.id, images.c.path, faces.c.w, faces.c.h).join(images)).all()
    largest: dict[str, tuple[float, int]] = {}
    for face_id, path, w, h in rows:
        if min(w, h) > largest.get(path, (-1.0, 0))[0]:
            largest[path] = (min(w, h), face_id)
    scored = np.searchsorted(ids, sorted(f for _, f in largest.values()))
    path_of = {f: p for p, (_, f) in largest.items()}
    truth = np.array([Path(path_of[int(ids[i])]).relative_to(folder.resolve()).parts[0] for i in scored])

    def facefind_labels() -> np.ndarray:
        labels = np.full(len(ids), -1, np.int64)
        with ff.catalog.engine.connect() as conn:
            for face_id, person in conn.execute(sa.select(face_persons.c.face_id, face_persons.c.person_id)):
                labels[np.searchsorted(ids, face_id)] = person
        return labels

    calibration = ff.calibration()
    immich_distance = IMMICH_MAX_DISTANCE * SFACE_DEEPFACE / BUFFALO_L_DEEPFACE
    out = {
        "photos": len(largest),
        "faces": len(ids),
        "identities": len(set(truth)),
        "facefind_incremental": clustering_scores(facefind_labels()[scored], truth),
        "facefind_full": None,
        "immich_defaults": {
            **clustering_scores(immich_dbscan(x, immich_distance, IMMICH_MIN_FACES)[scored], truth),
            "params": [round(immich_distance, 3), IMMICH_MIN_FACES],
            "implied_fmr": calibration.fmr(1 - immich_distance),
        },
        "immich_tuned": best_of(
            immich_dbscan,
            [(d, m) for d in np.arange(0.35, 0.76, 0.025).round(3) for m in (1, 2, 3, 4, 5)],
            x,
            truth,
            scored,
        ),
        "average_linkage_tuned": best_of(
            average_linkage, [(t,) for t in np.arange(0.15, 0.5, 0.025).round(3)], x, truth, scored
        ),
        "hdbscan_tuned": best_of(hdbscan, [(m,) for m in range(2, 11)], x, truth, scored),
        "indexed_seconds": report.seconds,
    }
    ff.people.recluster()
    out["facefind_full"] = clustering_scores(facefind_labels()[scored], truth)
    ff.close()
    return out


# --- an archive of many people: lfw_dev as one collection ------------------------------------------
ARCHIVE = "lfw_dev"


def indexed_archive(folder: Path, cache: Path) -> Path:
    """lfw_dev indexed once into one collection (`ff.index`), kept in `cache` for later runs."""
    db = cache / f"{folder.name}.db"
    if not db.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with facefind.open(cache / f"{folder.name}.building.db") as ff:
            ff.create_collection(folder.name, owner="benchmark", basis="own", retention="30d")
            ff.index(folder, collection=folder.name)
        (cache / f"{folder.name}.building.db").rename(db)
    return db


def archive_rows(db: Path) -> list:  # type: ignore[type-arg]
    with facefind.open(db) as ff, ff.catalog.engine.connect() as conn:
        query = sa.select(
            faces, images.c.path, images.c.width, images.c.height, images.c.size, images.c.mtime_ns
        ).join(images)
        return list(conn.execute(query.order_by(faces.c.id)).all())


def labelled_faces(rows: list) -> dict[int, int]:  # type: ignore[type-arg]
    """Photo (image id) -> its labelled face id: the one nearest the centre (evaluate.labelled_face)."""
    from facefind.evaluate import labelled_face
    from facefind.faces import Detection, Face, Quality

    by_photo: dict[int, list] = {}  # type: ignore[type-arg]
    for r in rows:
        det = Detection((r.x, r.y, r.w, r.h), np.zeros((5, 2), np.float32), r.det_score)
        face = Face(det, Quality(r.size_px, r.sharpness, r.yaw, r.quality), np.zeros(1), r.model_id, True)
        by_photo.setdefault(r.image_id, []).append((face, r))
    out = {}
    for photo, found in by_photo.items():
        chosen = labelled_face([f for f, _ in found], (found[0][1].height, found[0][1].width))
        out[photo] = next(r.id for f, r in found if f is chosen)
    return out


def copy_photos(ff: facefind.FaceFind, rows: list, collection: str) -> None:  # type: ignore[type-arg]
    """Store already-analysed photos (rows of another catalog) as indexing would, without analysis."""
    collection_id = ff.catalog.collection_id(collection)
    by_photo: dict[int, list] = {}  # type: ignore[type-arg]
    for r in rows:
        by_photo.setdefault(r.image_id, []).append(r)
    with ff.catalog.transaction() as conn:
        for found in by_photo.values():
            r = found[0]
            image_id = conn.execute(
                sa.insert(images).values(
                    collection_id=collection_id,
                    path=r.path,
                    size=r.size,
                    mtime_ns=r.mtime_ns,
                    width=r.width,
                    height=r.height,
                    status="indexed",
                    indexed_at=now(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            face_columns = [c.name for c in faces.columns if c.name not in ("id", "image_id")]
            conn.execute(
                sa.insert(faces),
                [{**{c: getattr(f, c) for c in face_columns}, "image_id": image_id} for f in found],
            )


def archive_quality(folder: Path, cache: Path, workdir: Path, batches: int = 4) -> dict:
    """lfw_dev as one collection: photos arrive in `batches` (shuffled, as an archive grows), each
    followed by the incremental update; then a full re-cluster. Scored on each photo's labelled face.
    Immich's rule (defaults, converted distance) clusters the same embeddings in the same order."""
    from collections import Counter

    rows = archive_rows(indexed_archive(folder, cache))
    photos = sorted({r.image_id for r in rows})
    order = np.random.default_rng(0).permutation(len(photos))
    batch_of = {photos[i]: b for b, part in enumerate(np.array_split(order, batches)) for i in part}
    ff = facefind.open(workdir / "archive.db")
    ff.create_collection(folder.name, owner="benchmark", basis="own", retention="30d")
    ordered = []
    for b in range(batches):
        batch = [r for r in rows if batch_of[r.image_id] == b]
        copy_photos(ff, batch, folder.name)
        ordered += batch
        ff.people.update()
    labelled = labelled_faces(ordered)
    ids, x, _, _, _ = ff.catalog.faces_after(ff.backend.model_id, 0, 2**62)
    old_ids = np.array([r.id for r in ordered])  # ids in the copy follow the same order
    scored = np.flatnonzero(np.isin(old_ids, list(labelled.values())))
    truth = np.array([Path(ordered[i].path).parent.name for i in scored])
    many = {t for t, c in Counter(truth.tolist()).items() if c >= 5}

    def assigned() -> np.ndarray:
        labels = np.full(len(ids), -1, np.int64)
        with ff.catalog.engine.connect() as conn:
            for face_id, person in conn.execute(sa.select(face_persons.c.face_id, face_persons.c.person_id)):
                labels[np.searchsorted(ids, face_id)] = person
        return labels

    def scores(labels: np.ndarray) -> dict:
        out = clustering_scores(labels[scored], truth)
        people: dict[int, set[str]] = {}
        for label, who in zip(labels[scored].tolist(), truth.tolist(), strict=True):
            if label >= 0 and who in many:
                people.setdefault(label, set()).add(who)
        out["most_5plus_people_in_one_cluster"] = max((len(v) for v in people.values()), default=0)
        out["largest_cluster"] = max(
            Counter(labels[scored][labels[scored] >= 0].tolist()).values(), default=0
        )
        return out

    immich_distance = IMMICH_MAX_DISTANCE * SFACE_DEEPFACE / BUFFALO_L_DEEPFACE
    methods = {"facefind_incremental": scores(assigned())}
    t = time.perf_counter()
    ff.people.recluster()
    full_s = time.perf_counter() - t
    methods["facefind_full"] = scores(assigned())
    methods["immich_defaults"] = {
        **scores(immich_dbscan(x, immich_distance, IMMICH_MIN_FACES)),
        "params": [round(immich_distance, 3), IMMICH_MIN_FACES],
        "implied_fmr": ff.calibration().fmr(1 - immich_distance),
    }
    methods["immich_0.5_unconverted"] = scores(immich_dbscan(x, IMMICH_MAX_DISTANCE, IMMICH_MIN_FACES))
    ff.close()
    return {
        "photos": len(photos),
        "faces": len(ids),
        "identities": len(set(truth)),
        "identities_5plus": len(many),
        "batches": batches,
        "full_recluster_s": round(full_s, 2),
        "methods": methods,
    }


def cached_spread(glint: Path, cache: Path) -> dict:
    path = cache / "glint_spread.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    spread = index_bench.measure_spread(glint)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spread))
    return spread


# --- speed on synthetic faces in a real catalog -------------------------------------------------
def store_faces(ff: facefind.FaceFind, vectors: np.ndarray, first_image: int) -> None:
    """Write faces straight into the catalog, one synthetic photo each (analysis is not timed)."""
    collection = ff.catalog.collection_id("synthetic")
    with ff.catalog.transaction() as conn:
        conn.execute(
            sa.insert(images),
            [
                dict(
                    collection_id=collection,
                    path=f"/synthetic/{first_image + i}.jpg",
                    size=1,
                    mtime_ns=0,
                    status="indexed",
                    indexed_at=now(),
                )
                for i in range(len(vectors))
            ],
        )
        image_ids = conn.execute(
            sa.select(images.c.id).where(images.c.path.like("/synthetic/%")).order_by(images.c.id)
        ).scalars()
        image_ids = list(image_ids)[-len(vectors) :]
        conn.execute(
            sa.insert(faces),
            [
                dict(
                    image_id=image_id,
                    face_index=0,
                    x=0.0,
                    y=0.0,
                    w=100.0,
                    h=100.0,
                    landmarks="[]",
                    det_score=0.9,
                    size_px=100.0,
                    sharpness=100.0,
                    yaw=0.0,
                    quality=0.9,
                    model_id=ff.backend.model_id,
                    embedding=v.tobytes(),
                )
                for image_id, v in zip(image_ids, vectors, strict=True)
            ],
        )


def speed(n: int, spread: dict, workdir: Path, add: int) -> dict:
    data = index_bench.FaceLikeData(n + add, spread, seed=1)
    vectors = np.vstack([v for _, v in data.chunks()])
    truth = np.arange(n + add) // index_bench.PER_IDENTITY
    # The catalog holds the first n faces; the last `add` are newcomers' and stored people's photos.
    order = np.random.default_rng(2).permutation(n + add)
    stored, added = order[:n], order[n:]
    workdir.mkdir(parents=True, exist_ok=True)
    ff = facefind.open(workdir / f"synthetic-{n}.db")
    store_faces(ff, vectors[np.sort(stored)], 0)
    t = time.perf_counter()
    full = ff.people.recluster()
    full_s = time.perf_counter() - t
    store_faces(ff, vectors[np.sort(added)], n)
    t = time.perf_counter()
    ff.people.update()
    incremental_s = time.perf_counter() - t
    ids, _, _, _, _ = ff.catalog.faces_after(ff.backend.model_id, 0, 2**62)
    labels = np.full(len(ids), -1, np.int64)
    with ff.catalog.engine.connect() as conn:
        for face_id, person in conn.execute(sa.select(face_persons.c.face_id, face_persons.c.person_id)):
            labels[np.searchsorted(ids, face_id)] = person
    faces_truth = truth[np.concatenate([np.sort(stored), np.sort(added)])]
    scores = clustering_scores(labels, faces_truth)
    new_part = clustering_scores(labels[n:], faces_truth[n:])
    ff.close()
    return {
        "faces": n,
        "full_recluster_s": round(full_s, 2),
        "full_persons": full.persons,
        f"incremental_add_{add}_s": round(incremental_s, 2),
        "bcubed_f1_after_add": scores["bcubed_f1"],
        "bcubed_f1_of_added_faces": new_part["bcubed_f1"],
        "unassigned_share": scores["unassigned_share"],
    }


def settled_catalog(path: Path, n: int, spread: dict) -> Path:
    """A catalog of `n` synthetic faces already grouped into persons (one per identity), as a
    catalog looks after earlier clustering runs: built once, reused from the cache."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building.db")
    building.unlink(missing_ok=True)
    ff = facefind.open(building)
    ff.create_collection("synthetic", owner="benchmark", basis="own", retention="30d")
    data = index_bench.FaceLikeData(n, spread, seed=1)
    for start, vectors in data.chunks():
        store_faces(ff, vectors, start)
        print(f"stored {start + len(vectors)} faces", file=sys.stderr)
    ids, _, _, _, _ = ff.catalog.faces_after(ff.backend.model_id, 0, 2**62)
    identity = np.arange(len(ids)) // index_bench.PER_IDENTITY
    persons_of = ff.people._new_persons(int(identity.max()) + 1)
    with ff.catalog.transaction() as conn:
        conn.execute(
            sa.insert(face_persons),
            [
                dict(face_id=int(f), person_id=persons_of[i], pinned=False)
                for f, i in zip(ids, identity, strict=True)
            ],
        )
    ff.catalog.set_setting(f"people_upto:{ff.backend.model_id}", str(int(ids.max())))
    ff.close()
    building.rename(path)
    return path


def new_photos(data: index_bench.FaceLikeData, n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """New photos of `count` random stored identities (as `FaceLikeData.queries`, but each chunk's
    identity centres made once: a row of them kept per query would hold the whole chunk alive)."""
    rng = np.random.default_rng(7)
    per_chunk = index_bench.CHUNK // index_bench.PER_IDENTITY
    identities = rng.integers(0, n // index_bench.PER_IDENTITY, count)
    centres = np.zeros((count, index_bench.DIM))
    for chunk in np.unique(identities // per_chunk).tolist():
        mine = identities // per_chunk == chunk
        centres[mine] = data._centers(chunk)[identities[mine] % per_chunk]
    return data._faces_of(centres, rng), identities


def incremental_at_scale(cache: Path, n: int, add: int, spread: dict, workdir: Path) -> dict:
    """`add` new faces (new photos of stored people and newcomers) placed into a settled catalog of
    `n`: the time of `people.update()` alone, and how well the new faces were placed."""
    import shutil

    base = settled_catalog(cache / f"settled-{n}.db", n, spread)
    db = workdir / "scale.db"
    shutil.copy(base, db)
    known, identities = new_photos(index_bench.FaceLikeData(n, spread, seed=1), n, add // 2)
    newcomers = index_bench.FaceLikeData(add, spread, seed=99)
    fresh = np.vstack([v for _, v in newcomers.chunks()])[: add - len(known)]
    ff = facefind.open(db)
    store_faces(ff, np.vstack([known, fresh]), n)
    t = time.perf_counter()
    report = ff.people.update()
    seconds = time.perf_counter() - t
    ids, _, _, _, _ = ff.catalog.faces_after(ff.backend.model_id, n, 2**62)
    with ff.catalog.engine.connect() as conn:
        placed = dict(conn.execute(sa.select(face_persons.c.face_id, face_persons.c.person_id)).all())
        first_person = dict(
            conn.execute(
                sa.select(face_persons.c.person_id, sa.func.min(face_persons.c.face_id)).group_by(
                    face_persons.c.person_id
                )
            ).all()
        )
    ff.close()
    labels = np.array([placed.get(int(f), -1) for f in ids])
    # A new photo of a stored identity is right if it joined the person holding that identity's faces.
    expected = identities * index_bench.PER_IDENTITY + 1  # face id of the identity's first face
    joined = [first_person.get(int(p)) for p in labels[: len(known)]]
    right = float(np.mean([j == e for j, e in zip(joined, expected, strict=True)]))
    newcomer_truth = np.arange(len(fresh)) // index_bench.PER_IDENTITY
    return {
        "catalog_faces": n,
        "added": add,
        "update_s": round(seconds, 2),
        "known_joined_right_person": round(right, 4),
        "newcomers_bcubed_f1": clustering_scores(labels[len(known) :], newcomer_truth)["bcubed_f1"],
        "new_persons": report.new_persons,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--add", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="speed runs per size; medians are reported")
    parser.add_argument("--skip-quality", action="store_true", help="only the speed measurements")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--reviewer",
        action="store_true",
        help="only the simulated reviewer on lfw_dev: review queue vs cluster by cluster (review_bench.py)",
    )
    parser.add_argument(
        "--reviewer-catalog", type=Path, help="a catalog holding lfw_dev indexed already (copied)"
    )
    parser.add_argument("--scale", type=int, nargs="*", default=[], help="incremental update into N faces")
    parser.add_argument("--scale-add", type=int, default=10_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/d-cache"), help="settled catalogs, lfw_dev")
    args = parser.parse_args()
    if args.reviewer:
        import review_bench

        with tempfile.TemporaryDirectory() as tmp:
            found = review_bench.simulate(args.datasets / "lfw_dev", Path(tmp), args.reviewer_catalog)
        print(json.dumps({"machine": machine.describe(), "reviewer": found}, indent=2))
        return
    result: dict = {"machine": machine.describe(), "folders": {}, "archive": None, "speed": [], "scale": []}
    with tempfile.TemporaryDirectory() as tmp:
        for folder in sorted(p for p in args.datasets.iterdir() if p.is_dir()):
            if args.skip_quality or len([p for p in folder.iterdir() if p.is_dir()]) < 2:
                continue  # unlabelled
            if folder.name == ARCHIVE:
                result["archive"] = archive_quality(folder, args.cache, Path(tmp))
            else:
                result["folders"][folder.name] = folder_quality(folder, Path(tmp))
            print(f"{folder.name}: done", file=sys.stderr)
        spread = cached_spread(args.datasets / "glint_dev12", args.cache)
        for n in args.scale:
            result["scale"].append(incremental_at_scale(args.cache, n, args.scale_add, spread, Path(tmp)))
            print(f"scale {n}: {result['scale'][-1]}", file=sys.stderr)
        for n in args.sizes:
            runs = []
            for run in range(args.runs):
                runs.append(speed(n, spread, Path(tmp) / f"run{run}", args.add))
                print(f"speed {n}: {runs[-1]}", file=sys.stderr)
            timed = ("full_recluster_s", f"incremental_add_{args.add}_s")
            median = {k: float(np.median([r[k] for r in runs])) for k in timed}
            result["speed"].append({**runs[-1], **median, "runs": len(runs), "all_runs": runs})
    if args.json:
        print(json.dumps(result, indent=2))
        return
    methods = ("facefind_incremental", "facefind_full", "immich_defaults", "immich_tuned")
    methods += ("average_linkage_tuned", "hdbscan_tuned")
    print(f"{'folder':18} {'method':22} {'BCubed F1':>9} {'pair F1':>8} {'persons':>8} {'unassigned':>10}")
    for name, row in result["folders"].items():
        for method in methods:
            r = row[method]
            print(
                f"{name:18} {method:22} {r['bcubed_f1']:>9} {r['pairwise_f1']:>8} "
                f"{r['persons_found']:>4}/{r['identities']:<3} {r['unassigned_share']:>10}"
            )
    if result["archive"]:
        for method, r in result["archive"]["methods"].items():
            print(f"{ARCHIVE:18} {method:22} {json.dumps(r)}")
    for row in result["speed"] + result["scale"]:
        print(row)


if __name__ == "__main__":
    main()
