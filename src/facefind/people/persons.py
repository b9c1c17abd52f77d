"""Persons in the catalog: grouped by clustering, named, merged and split by users.

Clustering is Chinese whispers over a graph linking faces whose similarity reaches the
threshold of `people_fmr`: `Settings.people_max_fmr`, stricter as the catalog grows (chosen by
measurement, bench/people_bench.py). Every run, incremental or full, then splits groups whose
parts link through too few face pairs, keeps one face per photo per person, and finally enforces
the recorded decisions (`_honour_decisions`): pinned faces stay, rejections hold.
- `update()` runs after every index: only new faces (id above the last one clustered) are
  placed. They and their nearest faces form a small graph in which faces already in a person
  are fixed; new faces join persons through it, or form new persons of at least `min_faces`.
- `recluster()` starts over from every face, keeping each user decision: faces a user placed
  (merge, split) are fixed, named persons keep their id and name (each new group takes the id
  of the old person it overlaps most, named persons first), and a face a user said is "not this
  person" never goes back to that person.
Low-quality faces never seed a person; they join the person their good neighbours vote for.

Consent follows the faces (accountability/consent.py): a face that clustering would give to a
person whose consent does not cover clustering is bound to that consent instead and stays
unassigned. A person whose consent does not cover showing results is never listed or returned,
and no reviewer decision is made on them (a DPO's erasure or purge handles them).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from .. import policy
from ..accountability import consent
from ..catalog import Catalog
from ..catalog import persons as store
from ..errors import FacefindError, NotFound
from ..limits import is_id
from ..results import Box, ClusterReport, Person, PersonFace
from ..settings import Settings
from . import background
from .clustering import (
    chinese_whispers,
    cut_same_photo,
    link_density,
    separate_same_photo,
    split_incoherent,
    threshold_graph,
)

EXACT_POOL = 200_000  # above, new faces are placed through the persons nearest them (_neighbours_via_persons)
CANDIDATE_PERSONS = 5
NEIGHBOURS = 60  # graph degree; 30 made glint_dev12 results depend on the random seed (docs/benchmarks.md)


def people_fmr(catalog: Catalog, model_id: str, settings: Settings) -> float:
    """The false-match rate at which clustering links two faces: `people_max_fmr`, made stricter as
    the catalog grows so that each face expects at most `people_false_links` chance links."""
    faces_ = store.face_count(catalog, model_id)
    return min(settings.people_max_fmr, settings.people_false_links / max(faces_, 1))


def people_threshold(calibration: Any, fmr: float) -> float:
    """The similarity of `fmr`; a calibration without a tail model (made before it fitted one)
    gives its lowest measured rate's instead of refusing to cluster."""
    if fmr < calibration.measured_floor and calibration.tail is None:
        fmr = calibration.measured_floor
    return float(calibration.threshold(fmr))


class PersonNotFound(NotFound):
    pass


@dataclass
class _Snapshot:
    """Every face of one model, with its current person (-1: none)."""

    ids: np.ndarray
    embeddings: np.ndarray
    good: np.ndarray  # may seed a person (size and quality minimums)
    person: np.ndarray
    pinned: np.ndarray
    rejected: set[tuple[int, int]]  # (face id, person id)
    photo: np.ndarray  # image id: two faces of one photo are never one person
    quality: np.ndarray


class People:
    def __init__(
        self,
        catalog: Catalog,
        model_id: str,
        settings: Settings,
        threshold: float | Callable[[], float],
        log: Callable[[str, dict], object] | None = None,
    ) -> None:
        self.catalog, self.model_id, self.settings = catalog, model_id, settings
        self._threshold = threshold
        self._log = log or (lambda decision, details: None)  # user decisions go to the audit log
        self._upto_key = f"people_upto:{model_id}"

    @property
    def threshold(self) -> float:
        """The similarity at which clustering links two faces; given as a function, it is computed
        on first use and kept (it counts the catalog's faces: listing and naming never need it)."""
        if callable(self._threshold):
            self._threshold = float(self._threshold())
        return self._threshold

    # clustering ------------------------------------------------------------------------------
    def update(self) -> ClusterReport:
        """Place the faces indexed since the last update; existing assignments are not revisited."""
        with self.catalog.faces_held():  # one clustering at a time; no face deleted under it
            return self._update()

    def _update(self) -> ClusterReport:
        started = time.perf_counter()
        upto = int(self.catalog.get_setting(self._upto_key, "0"))
        snap = self._snapshot()
        new = snap.ids > upto
        unplaced = snap.person < 0
        _, created = self._place_new(snap, np.flatnonzero(new & snap.good))
        self._attach(snap, np.flatnonzero(new & ~snap.good))
        bound = self._withhold_joins(snap, unplaced)
        # Low-quality faces left out before may match the faces placed just now.
        just_placed = unplaced & (snap.person >= 0) & snap.good
        self._attach(snap, np.flatnonzero(~new & ~snap.good & unplaced), just_placed)
        bound.update(self._withhold_joins(snap, unplaced))
        self._honour_decisions(snap, unplaced)
        self._write(snap, incremental=True, bound=bound)
        if len(snap.ids):
            self.catalog.set_setting(self._upto_key, str(int(snap.ids.max())))
        assigned = int((unplaced & (snap.person >= 0)).sum())
        return self._report("incremental", int(new.sum()), assigned, created, snap, started)

    def recluster(self) -> ClusterReport:
        """Group every face again from scratch, keeping user decisions (see module docstring)."""
        with self.catalog.faces_held():
            return self._recluster()

    def _recluster(self) -> ClusterReport:
        started = time.perf_counter()
        snap = self._snapshot()
        old = snap.person.copy()
        nodes = np.flatnonzero(snap.good | snap.pinned)
        graph = cut_same_photo(
            threshold_graph(snap.embeddings[nodes], self.threshold, NEIGHBOURS), snap.photo[nodes]
        )
        fixed = np.where(snap.pinned[nodes], snap.person[nodes], -1)
        labels = self._constrain(snap, nodes, chinese_whispers(graph, fixed), fixed)
        snap.person[~snap.pinned] = -1
        created = self._adopt_groups(snap, nodes, labels, set(fixed[fixed >= 0].tolist()), old)
        self._attach(snap, np.flatnonzero(~snap.good & ~snap.pinned))
        bound = self._withhold_joins(snap, snap.person != old)
        self._honour_decisions(snap, snap.person != old)
        self._write(snap, incremental=False, bound=bound)
        if len(snap.ids):
            self.catalog.set_setting(self._upto_key, str(int(snap.ids.max())))
        assigned = int((snap.person >= 0).sum())
        return self._report("full", len(snap.ids), assigned, created, snap, started)

    def _withhold_joins(self, snap: _Snapshot, moved: np.ndarray) -> dict[int, int]:
        """Faces (among `moved`) that clustering put into a person whose consent does not cover
        clustering: they leave it, bound to that person's consent (face id -> person)."""
        blocked = consent.withheld_persons(self.catalog, "clustering")
        joined = np.flatnonzero(moved & np.isin(snap.person, list(blocked)))
        bound = dict(zip(snap.ids[joined].tolist(), snap.person[joined].tolist(), strict=True))
        snap.person[joined] = -1
        return bound

    def _place_new(self, snap: _Snapshot, new: np.ndarray) -> tuple[int, int]:
        """Cluster new good faces together with their neighbours, fixing already-placed ones."""
        if not len(new):
            return 0, 0
        pool = np.flatnonzero(snap.good | (snap.person >= 0))
        if len(pool) <= EXACT_POOL:
            rows, cols, sims = _neighbours(snap.embeddings, new, pool, NEIGHBOURS, self.threshold)
        else:
            rows, cols, sims = _neighbours_via_persons(snap, new, NEIGHBOURS, self.threshold)
        nodes = np.unique(np.concatenate([new, cols]))
        n = len(nodes)
        a = np.searchsorted(nodes, rows)
        b = np.searchsorted(nodes, cols)
        graph = sp.coo_matrix((sims, (a, b)), shape=(n, n)).tocsr()
        graph = cut_same_photo(graph.maximum(graph.T).tocsr(), snap.photo[nodes])
        fixed = snap.person[nodes]
        labels = chinese_whispers(graph, fixed)
        labels = self._gate_joins(snap, nodes, labels, fixed)
        labels = self._constrain(snap, nodes, labels, fixed)
        before = int((snap.person >= 0).sum())
        created = self._adopt_groups(snap, nodes, labels, set(fixed[fixed >= 0].tolist()), None)
        return int((snap.person >= 0).sum()) - before, created

    def _constrain(
        self, snap: _Snapshot, nodes: np.ndarray, labels: np.ndarray, fixed: np.ndarray
    ) -> np.ndarray:
        """Labels after the checks every run applies: incoherent groups split, one face per photo."""
        x = snap.embeddings[nodes]
        labels = split_incoherent(x, labels, fixed, self.threshold, self.settings.people_min_link_density)
        return separate_same_photo(x, labels, snap.photo[nodes], fixed)

    def _gate_joins(
        self, snap: _Snapshot, nodes: np.ndarray, labels: np.ndarray, fixed: np.ndarray
    ) -> np.ndarray:
        """A new face joins an existing person only if it links to at least
        `people_min_link_density` of all that person's faces (not just the neighbours in the
        graph): the statistic `split_incoherent` checks in a full run. Else it gets a label of its
        own (and may still form a new person with other new faces)."""
        joining = np.flatnonzero((fixed < 0) & np.isin(labels, fixed[fixed >= 0]))
        if not len(joining):
            return labels
        targets = np.unique(labels[joining])
        members = np.flatnonzero(np.isin(snap.person, targets))
        members = members[np.argsort(snap.person[members], kind="stable")]
        starts = np.searchsorted(snap.person[members], targets)
        ends = np.searchsorted(snap.person[members], targets, side="right")
        labels = labels.copy()
        next_label = int(labels.max(initial=-1)) + 1
        for target, a, b in zip(targets.tolist(), starts.tolist(), ends.tolist(), strict=True):
            who = joining[labels[joining] == target]
            density = link_density(snap.embeddings[nodes[who]], snap.embeddings[members[a:b]], self.threshold)
            refused = who[density < self.settings.people_min_link_density]
            labels[refused] = next_label + np.arange(len(refused))
            next_label += len(refused)
        return labels

    def _honour_decisions(self, snap: _Snapshot, moved: np.ndarray) -> None:
        """The last word of every run, whatever the steps before did: a face (among `moved`) never
        sits in a person that rejected it, nor in a person that holds another face of its photo
        (pinned faces and faces that did not move are kept; among the moved, the best quality)."""
        for face in np.flatnonzero(moved & (snap.person >= 0) & ~snap.pinned).tolist():
            if (int(snap.ids[face]), int(snap.person[face])) in snap.rejected:
                snap.person[face] = -1
        placed = np.flatnonzero(snap.person >= 0)
        key = snap.person[placed] * (int(snap.photo.max(initial=0)) + 1) + snap.photo[placed]
        order = np.argsort(key, kind="stable")
        dup = np.flatnonzero(key[order][1:] == key[order][:-1])
        if not len(dup):
            return
        for k in np.unique(key[order][dup]).tolist():
            clash = placed[key == k]
            rank = snap.pinned[clash] * 4 + ~moved[clash] * 2
            best = clash[np.lexsort((-snap.quality[clash], -rank))[0]]
            for face in clash.tolist():
                if face != best and not snap.pinned[face] and moved[face]:
                    snap.person[face] = -1

    def _adopt_groups(
        self,
        snap: _Snapshot,
        nodes: np.ndarray,
        labels: np.ndarray,
        persons_in_graph: set[int],
        old: np.ndarray | None,
    ) -> int:
        """Turn clustering labels into persons: known person ids stay; other groups take the id of
        the old person they overlap most (named first), or become new persons if big enough."""
        joins: dict[int, int] = {}
        groups: dict[int, list[int]] = {}
        for node, label in zip(nodes.tolist(), labels.tolist(), strict=True):
            if snap.person[node] >= 0 and snap.pinned[node]:
                continue
            if label in persons_in_graph:
                joins[node] = label
            else:
                groups.setdefault(label, []).append(node)
        if old is not None:
            named = self._named()
            pairs = []
            for label, members in groups.items():
                for person, overlap in Counter(int(old[m]) for m in members if old[m] >= 0).items():
                    pairs.append((person in named, overlap, label, person))
            used_labels: set[int] = set()
            used_persons = set(persons_in_graph)
            for _, _, label, person in sorted(pairs, reverse=True):
                if label not in used_labels and person not in used_persons:
                    used_labels.add(label)
                    used_persons.add(person)
                    joins.update(dict.fromkeys(groups.pop(label), person))
        big = [m for m in groups.values() if len(m) >= self.settings.people_min_faces]
        for members, person in zip(big, self._new_persons(len(big)), strict=True):
            joins.update(dict.fromkeys(members, person))
        created = len(big)
        for node, person in joins.items():
            if (int(snap.ids[node]), person) not in snap.rejected:
                snap.person[node] = person
        return created

    def _attach(self, snap: _Snapshot, faces_: np.ndarray, among: np.ndarray | None = None) -> int:
        """Low-quality faces join the person their nearest good, placed faces (`among`) vote for."""
        pool = np.flatnonzero(snap.good & (snap.person >= 0) if among is None else among)
        if not len(faces_) or not len(pool):
            return 0
        rows, cols, sims = _neighbours(snap.embeddings, faces_, pool, NEIGHBOURS, self.threshold)
        votes: dict[int, Counter[int]] = {}
        for r, c, s in zip(rows.tolist(), cols.tolist(), sims.tolist(), strict=True):
            votes.setdefault(r, Counter())[int(snap.person[c])] += s
        attached = 0
        for face, counter in votes.items():
            for person, _ in counter.most_common():
                if (int(snap.ids[face]), person) not in snap.rejected:
                    snap.person[face] = person
                    attached += 1
                    break
        return attached

    # reading ---------------------------------------------------------------------------------
    def all(self, include_hidden: bool = False) -> list[Person]:
        """Persons with at least one face that may be shown, most faces first; hidden ones and
        background ones (a single bystander's face, people/background.py) only if asked for.
        Persons whose consent does not (or no longer) cover being shown are never
        listed, nor are persons all of whose faces are opted out or withheld, named or not."""
        withheld = consent.withheld_persons(self.catalog, "results")
        rows = store.rows(self.catalog, self.model_id, include_hidden=include_hidden, leave_out=withheld)
        members = self._faces_of([r.id for r in rows])
        bystanders = self.background_persons()
        out = [_person(r, members[r.id], r.id in bystanders) for r in rows if members.get(r.id)]
        if not include_hidden:
            out = [p for p in out if not p.background or p.name]
        return sorted(out, key=lambda p: (-p.face_count, p.id))

    def get(self, person_id: int) -> Person:
        """A person with the faces that may be shown (callers showing it check `require_shown`)."""
        row = self._row(person_id)
        return _person(
            row, self._faces_of([person_id]).get(person_id, []), person_id in self.background_persons()
        )

    def background_persons(self) -> set[int]:
        """Persons whose only face is a background face: not listed by default, never suggested."""
        return background.persons(self.catalog, self.model_id, self.settings)

    def background_faces(self, face_ids: Iterable[int]) -> set[int]:
        """Which of these faces are background faces (a review queue leaves them out)."""
        return background.faces(
            self.catalog, self.model_id, self.settings, sorted({int(f) for f in face_ids})
        )

    def set_min_template(self, px: int) -> int:
        """Data minimisation: faces under `px` pixels indexed from now on get no template at all
        (0: every face does). Returns how many stored faces are under it (kept until re-indexed
        or erased)."""
        background.set_min_template(self.catalog, px)
        self._log("min_template", {"px": int(px)})
        return store.faces_under(self.catalog, self.model_id, px)

    def photos(self, person_id: int) -> list[str]:
        """Paths of every photo the person is in, in path order."""
        return sorted({f.path for f in self.get(person_id).faces})

    # user decisions --------------------------------------------------------------------------
    def name(self, person_id: int, name: str) -> Person:
        name = name.strip()
        if not name:
            raise FacefindError("a person's name cannot be empty; to remove a name use --clear")
        self._decidable(person_id, "named")
        if not any(c.active for c in consent.all_(self.catalog, person_id)):
            raise FacefindError(
                f"naming person {person_id} needs their consent on record first: facefind consent add "
                f"{person_id} --by WHO --scope search,results,clustering --expires YYYY-MM-DD --evidence REF"
            )
        store.update(self.catalog, person_id, name=name)
        self._log("name", {"person": person_id, "name": name})
        return self.get(person_id)

    def unname(self, person_id: int) -> Person:
        self._decidable(person_id, "have their name cleared")
        store.update(self.catalog, person_id, name=None)
        self._log("unname", {"person": person_id})
        return self.get(person_id)

    def hide(self, person_id: int, hidden: bool = True) -> Person:
        self._decidable(person_id, "hidden or shown")
        store.update(self.catalog, person_id, hidden=hidden)
        self._log("hide" if hidden else "unhide", {"person": person_id})
        return self.get(person_id)

    def merge(self, sources: Iterable[int], into: int, *, confirm: bool = False) -> Person:
        """Move every face of `sources` into person `into` (pinned) and delete the sources.

        The merged person keeps every name and consent record involved, so a consent that was
        withdrawn keeps withholding the faces it covered. A merge that would put faces under
        another person's name or consent must be confirmed (`confirm`): it says they are one person.
        """
        sources = list(dict.fromkeys(int(s) for s in sources))
        if not sources:
            raise FacefindError("name at least one person to merge into another")
        if into in sources:
            raise FacefindError(f"cannot merge person {into} into itself; name other persons to merge in")
        rows = {person_id: self._row(person_id) for person_id in [*sources, into]}
        for person_id in rows:
            self._decidable(person_id, "merged")
        names = {p: r.name for p, r in rows.items() if r.name}
        if len(set(names.values())) > 1:
            listed = ", ".join(f"{p} ({n})" for p, n in names.items())
            raise FacefindError(
                f"persons {listed} have different names; if they really are one person, clear the "
                f"wrong name first (`facefind people name ID --clear`)"
            )
        with_consent = sorted({c.person_id for p in rows for c in consent.all_(self.catalog, p)})
        bound = sorted(set(names) | set(with_consent))
        if bound and not confirm:
            who = f"persons {', '.join(map(str, bound))} have" if len(bound) > 1 else f"person {bound[0]} has"
            raise FacefindError(
                f"{who} a name or consent on record: merging puts every merged face under that name "
                f"and consent. If they are the same person, confirm with --confirm"
            )
        name = next(iter(names.values()), None)
        store.merge(self.catalog, sources, into, name)
        self._log("merge", {"persons": sources, "into": into, "name": name, "consents_of": with_consent})
        return self.get(into)

    def split(self, person_id: int, face_ids: Iterable[int]) -> Person:
        """Move some faces of a person into a new person; both sides are pinned."""
        wanted = sorted({int(f) for f in face_ids})
        current = {f.face_id for f in self._decidable(person_id, "split").faces}
        self._check_faces(person_id, wanted, current)
        if set(wanted) == current:
            raise FacefindError(
                f"those are all {len(current)} faces of person {person_id}; a split must leave at least "
                f"one. To rename the person use `people name`."
            )
        new = self._new_person()
        store.split(self.catalog, person_id, wanted, new)
        self._log("split", {"person": person_id, "faces": wanted, "new_person": new})
        return self.get(new)

    def remove(self, person_id: int, face_ids: Iterable[int]) -> Person:
        """ "Not this person": the faces leave the person and clustering never puts them back."""
        wanted = sorted({int(f) for f in face_ids})
        current = {f.face_id for f in self._decidable(person_id, "have faces removed").faces}
        self._check_faces(person_id, wanted, current)
        store.reject(self.catalog, person_id, wanted)
        self._log("remove", {"person": person_id, "faces": wanted})
        return self.get(person_id)

    # storage ---------------------------------------------------------------------------------
    def _snapshot(self) -> _Snapshot:
        ids, embeddings, _, size_px, quality = self.catalog.faces_after(self.model_id, 0, 2**62)
        person = np.full(len(ids), -1, np.int64)
        pinned = np.zeros(len(ids), bool)
        assigned, rejected = store.assignments(self.catalog, self.model_id)
        if assigned:
            a = np.array([(f, p, bool(pin)) for f, p, pin in assigned], np.int64)
            # A person's face may still hold another model's embedding (its photo was missing when
            # `models use` re-embedded the catalog): it is not clustered, but stays with its person.
            a = a[np.isin(a[:, 0], ids)]
            pos = np.searchsorted(ids, a[:, 0])
            person[pos], pinned[pos] = a[:, 1], a[:, 2].astype(bool)
        good = (size_px >= self.settings.min_face_px) & (quality >= self.settings.min_quality)
        photo = store.photos_of(self.catalog, self.model_id, ids)
        return _Snapshot(ids, embeddings, good, person, pinned, rejected, photo, quality)

    def _write(self, snap: _Snapshot, incremental: bool, bound: dict[int, int]) -> None:
        """Store the assignment of every unpinned face (incremental: only faces newly placed), and
        bind the faces `bound` to their consent subject."""
        placed = snap.person >= 0
        wanted = dict(zip(snap.ids[placed].tolist(), snap.person[placed].tolist(), strict=True))
        considered = set(snap.ids.tolist())
        store.save_assignments(self.catalog, self.model_id, wanted, considered, incremental, bound)

    def _new_person(self) -> int:
        return self._new_persons(1)[0]

    def _new_persons(self, count: int) -> list[int]:
        return store.new(self.catalog, self.model_id, count)

    def _named(self) -> set[int]:
        return store.named(self.catalog, self.model_id)

    def _row(self, person_id: int) -> Any:
        row = store.row(self.catalog, self.model_id, person_id) if is_id(person_id) else None
        if row is None:
            raise PersonNotFound(f"no person with id {person_id}; `facefind people list` shows them")
        return row

    def _decidable(self, person_id: int, decision: str) -> Person:
        """The person, if a reviewer may decide on them: not while their consent does not cover
        showing them (policy.require_shown), which would show or undo what it withholds."""
        self._row(person_id)
        policy.require_shown(self.catalog, person_id, decision)
        return self.get(person_id)

    def _check_faces(self, person_id: int, wanted: list[int], current: set[int]) -> None:
        if not wanted:
            raise FacefindError("name at least one face (--face ID); `facefind people show` lists them")
        strangers = [f for f in wanted if f not in current]
        if strangers:
            raise FacefindError(
                f"face(s) {', '.join(map(str, strangers))} are not in person {person_id}; "
                f"`facefind people show {person_id}` lists its faces"
            )

    def _faces_of(self, person_ids: list[int]) -> dict[int, list[PersonFace]]:
        """The faces of persons that may be shown: none opted out or withheld by a consent."""
        out: dict[int, list[PersonFace]] = {}
        hidden = set(policy.hidden_faces(self.catalog, "results").tolist())
        for r in store.faces_of(self.catalog, person_ids):
            if r.id in hidden:
                continue
            box = Box(x=round(r.x, 1), y=round(r.y, 1), w=round(r.w, 1), h=round(r.h, 1))
            face = PersonFace(
                face_id=r.id, image_id=r.image_id, path=r.path, box=box, quality=r.quality, pinned=r.pinned
            )
            out.setdefault(r.person_id, []).append(face)
        return out

    def _report(
        self, mode: str, considered: int, assigned: int, created: int, snap: _Snapshot, started: float
    ) -> ClusterReport:
        return ClusterReport(
            mode=mode,
            faces_considered=considered,
            faces_assigned=assigned,
            persons=len(set(snap.person[snap.person >= 0].tolist())),
            new_persons=created,
            unassigned=int((snap.person < 0).sum()),
            seconds=round(time.perf_counter() - started, 3),
        )


def _neighbours(
    embeddings: np.ndarray, queries: np.ndarray, pool: np.ndarray, k: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (query position, pool position, similarity) to each query's k nearest pool faces at
    or above threshold, itself excluded. Exact: a few thousand new faces against the catalog."""
    if not len(queries) or not len(pool):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings[pool], np.float32))
    k = min(k + 1, len(pool))
    sims, found = index.search(np.ascontiguousarray(embeddings[queries], np.float32), k)
    rows = np.repeat(queries, k)
    cols = np.where(found >= 0, pool[np.clip(found, 0, None)], -1).ravel()
    keep = (found.ravel() >= 0) & (sims.ravel() >= threshold) & (cols != rows)
    return rows[keep], cols[keep], sims.ravel()[keep]


def _neighbours_via_persons(
    snap: _Snapshot, queries: np.ndarray, k: int, threshold: float, persons: int = CANDIDATE_PERSONS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_neighbours` for large catalogs: exact against faces in no person, and against every face of
    the `persons` persons whose mean embedding is nearest each query (a search over persons, not
    over every face: 10,000 new faces into 1M stored ones, docs/benchmarks.md)."""
    loose = np.flatnonzero(snap.good & (snap.person < 0))
    rows, cols, sims = _neighbours(snap.embeddings, queries, loose, k, threshold)
    placed = np.flatnonzero(snap.person >= 0)
    if not len(placed):
        return rows, cols, sims
    placed = placed[np.argsort(snap.person[placed], kind="stable")]
    ids, starts, counts = np.unique(snap.person[placed], return_index=True, return_counts=True)
    sums = np.add.reduceat(snap.embeddings[placed], starts, axis=0)
    centres = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(centres.shape[1])
    index.add(np.ascontiguousarray(centres, np.float32))
    _, nearest = index.search(
        np.ascontiguousarray(snap.embeddings[queries], np.float32), min(persons, len(ids))
    )
    # Every (query, face of a candidate person) pair, as flat arrays.
    pair_query = np.repeat(np.repeat(queries, nearest.shape[1]), counts[nearest.ravel()])
    first = np.repeat(starts[nearest.ravel()], counts[nearest.ravel()])
    offset = np.arange(len(first)) - np.repeat(
        np.cumsum(counts[nearest.ravel()]) - counts[nearest.ravel()], counts[nearest.ravel()]
    )
    pair_face = placed[first + offset]
    pair_sim = np.einsum("ij,ij->i", snap.embeddings[pair_query], snap.embeddings[pair_face])
    keep = (pair_sim >= threshold) & (pair_face != pair_query)
    return (
        np.concatenate([rows, pair_query[keep]]),
        np.concatenate([cols, pair_face[keep]]),
        np.concatenate([sims, pair_sim[keep]]),
    )


def _person(row: Any, members: list[PersonFace], bystander: bool = False) -> Person:
    cover = next((f for f in members if f.face_id == row.cover_face_id), members[0] if members else None)
    return Person(
        id=row.id,
        name=row.name,
        hidden=row.hidden,
        face_count=len(members),
        cover=cover,
        faces=members,
        background=bystander,
    )
