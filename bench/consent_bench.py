"""Redaction keeps consenting people visible: the share of their photos in which they stay visible.

    python bench/consent_bench.py [--data ../shared/datasets/lfw_dev] [--people 40] [--enrol 2]

LFW photos (250x250, the named person's face in the centre, often others around). For the first
`--people` identities (alphabetical) with more than `--enrol` photos, the first `--enrol` photos
are indexed into a fresh catalog, every person clustering made from them gets a consent with the
scope `publication`, and every other photo of those identities is decided as `facefind redact`
decides it. Counted per photo: the centre face kept as the right person (kept), kept as someone
else (wrong), or hidden (missed); and faces other than the centre one that were kept (strangers
shown: LFW's bystanders are not in the catalog).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import facefind
import machine
from facefind.images import load_image
from facefind.publish.run import Publisher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/datasets/lfw_dev")
    ap.add_argument("--people", type=int, default=40)
    ap.add_argument("--enrol", type=int, default=2)
    args = ap.parse_args()
    folders = [f for f in sorted(args.data.iterdir()) if f.is_dir() and len(list(f.iterdir())) > args.enrol]
    folders = folders[: args.people]
    work = Path(tempfile.mkdtemp(prefix="consent-bench-"))
    try:
        gallery = work / "gallery"
        probes: list[tuple[str, Path]] = []
        for f in folders:
            photos = sorted(f.iterdir())
            (gallery / f.name).mkdir(parents=True)
            for p in photos[: args.enrol]:
                shutil.copy(p, gallery / f.name / p.name)
            probes += [(f.name, p) for p in photos[args.enrol :]]
        with facefind.open(work / "c.db", purpose="consent bench") as ff:
            ff.create_collection("lfw", owner="bench", basis="own", retention="1y")
            ff.index(gallery, collection="lfw", workers=1)
            who: dict[int, str] = {}
            for person in ff.people.all():
                names = collections.Counter(Path(x.path).parent.name for x in person.faces)
                who[person.id] = names.most_common(1)[0][0]
                ff.consent_add(
                    person.id, given_by="p", scope="publication", expires="2099-01-01", evidence="e"
                )
            publisher = Publisher(ff, "consented", "consent bench")
            counts: collections.Counter[str] = collections.Counter()
            for name, path in probes:
                image = load_image(path, ff.settings)
                faces = publisher.decide(image)
                h, w = image.shape[:2]
                centre = [
                    f
                    for f in faces
                    if f.box.x <= w / 2 <= f.box.x + f.box.w and f.box.y <= h / 2 <= f.box.y + f.box.h
                ]
                main_face = max(centre, key=lambda f: f.box.w * f.box.h, default=None)
                if main_face is None or main_face.decision == "hidden":
                    counts["missed"] += 1
                elif who.get(main_face.person_id or -1) == name:
                    counts["kept"] += 1
                else:
                    counts["wrong"] += 1
                counts["others_kept"] += sum(f.decision == "kept" for f in faces if f is not main_face)
                counts["others"] += sum(f is not main_face for f in faces)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = len(probes)
    print(
        json.dumps(
            {
                "identities": len(folders),
                "persons_with_consent": len(who),
                "probe_photos": total,
                "kept_right_person": round(counts["kept"] / total, 3),
                "kept_as_someone_else": counts["wrong"],
                "hidden": counts["missed"],
                "other_faces": counts["others"],
                "other_faces_kept": counts["others_kept"],
                "machine": machine.describe(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
