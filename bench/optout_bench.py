"""Opt-out quality on glint_dev12: enrol one photo of a person, measure what gets suppressed.

    python bench/optout_bench.py [--datasets ../shared/datasets] [--per-person 5] [--json]

glint_dev12 is indexed into a fresh catalog (faces grouped into persons as indexing does). Then, for
each of its 12 people and `--per-person` seeded-random photos of them, one photo is enrolled with
`FaceFind.optout_add` and removed again. Reported: the share of that person's *other* faces that
are suppressed (target >= 0.95) and the share of other people's faces wrongly suppressed (target
<= 0.001), for facefind's rule (strict template match at FMR 1e-5, plus the faces of the person a
match belongs to) and, for comparison, the template match alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
import facefind
import machine
from facefind.accountability import optouts
from facefind.catalog.schema import face_suppressions, faces, images

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--per-person", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    glint = (args.datasets / "glint_dev12").resolve()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, facefind.open(Path(tmp) / "c.db", actor="benchmark") as ff:
        ff.create_collection("glint", owner="benchmark", basis="own", retention="30d")
        ff.index(glint, collection="glint")
        ids, embeddings, _, _, _ = ff.catalog.faces_after(ff.backend.model_id, 0, 2**62)
        with ff.catalog.engine.connect() as conn:
            rows = conn.execute(sa.select(faces.c.id, images.c.path).join(images)).all()
        person_of = {face_id: Path(path).parent.name for face_id, path in rows}
        image_of = {face_id: path for face_id, path in rows}
        threshold = ff.calibration().threshold(optouts.DEFAULT_MAX_FMR)
        trials = []
        for person in sorted(p.name for p in glint.iterdir() if p.is_dir()):
            photos = sorted((glint / person).iterdir())
            for photo in rng.choice(photos, size=min(args.per_person, len(photos)), replace=False):
                added = ff.optout_add(photo)
                with ff.catalog.engine.connect() as conn:
                    suppressed = set(
                        conn.execute(
                            sa.select(face_suppressions.c.face_id).where(
                                face_suppressions.c.optout_id == added.id
                            )
                        ).scalars()
                    )
                ff.optout_remove(added.id)
                template = ff.faces(photo)[0].embedding
                direct = {int(f) for f in ids[embeddings @ template >= threshold]}
                own = {f for f, p in person_of.items() if p == person and image_of[f] != str(photo)}
                others = {f for f, p in person_of.items() if p != person}
                trials.append(
                    {
                        "person": person,
                        "photo": photo.name,
                        "own_suppressed": len(suppressed & own) / len(own),
                        "others_suppressed": len(suppressed & others) / len(others),
                        "own_direct_only": len(direct & own) / len(own),
                        "others_direct_only": len(direct & others) / len(others),
                    }
                )
                print(f"{person} {photo.name}: {trials[-1]}", file=sys.stderr)

    def summary(key: str) -> dict:
        values = np.array([t[key] for t in trials])
        return {
            "mean": round(float(values.mean()), 4),
            "min": round(float(values.min()), 4),
            "max": round(float(values.max()), 4),
        }

    result = {
        "machine": machine.describe(),
        "dataset": "glint_dev12",
        "faces": len(ids),
        "trials": len(trials),
        "threshold": round(threshold, 4),
        "facefind": {
            "own_suppressed": summary("own_suppressed"),
            "others_suppressed": summary("others_suppressed"),
        },
        "template_only": {
            "own_suppressed": summary("own_direct_only"),
            "others_suppressed": summary("others_direct_only"),
        },
        "per_trial": trials,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{len(trials)} opt-outs on glint_dev12 ({len(ids)} faces), threshold {threshold:.3f} (FMR 1e-5)")
    for rule in ("facefind", "template_only"):
        r = result[rule]
        print(
            f"{rule:14} own faces suppressed {r['own_suppressed']}  others wrongly {r['others_suppressed']}"
        )


if __name__ == "__main__":
    main()
