"""The people list a page at a time, at any number of persons (keyset paging in the database).

Persons come most faces first, then by id; a page key "FACES:ID" names the last person of a page
and the next page starts after it, so a page costs the same at person 100,000 as at person 1
(`offset` is kept for the web UI's first pages, and is cheap only near the start). The database
counts each person's faces that are not opted out and sorts; only one page of persons, and the
faces of those, is read. A face withheld by a consent (policy.hidden_faces) is left out of the
person shown, so a count shown may be below the count sorted by; a person left with no face to
show is not listed, as in `People.all()`.
"""

from __future__ import annotations

from ..accountability import consent
from ..catalog import persons as store
from ..errors import InvalidValue
from ..results import Person
from .persons import People, _person


def page(
    people: People,
    include_hidden: bool = False,
    *,
    after: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[Person], str | None]:
    """One page of persons and the key of the next page (None: this was the last)."""
    key = _key(after) if after else None
    withheld = consent.withheld_persons(people.catalog, "results")
    found: list[Person] = []
    last: tuple[int, int] | None = key
    while len(found) < limit:
        want = limit - len(found)
        rows = store.page(
            people.catalog,
            people.model_id,
            include_hidden=include_hidden,
            leave_out=withheld,
            after=last,
            offset=offset if last == key else 0,
            limit=want + 1,
        )
        members = people._faces_of([r.id for r, _ in rows[:want]])
        for r, n in rows[:want]:
            last = (n, r.id)
            if members.get(r.id):
                found.append(_person(r, members[r.id]))
        if len(rows) <= want:  # nothing follows
            return found, None
    return found, f"{last[0]}:{last[1]}" if last else None


def _key(after: str) -> tuple[int, int]:
    faces, _, person = after.partition(":")
    if not (faces.isdigit() and person.isdigit()):
        raise InvalidValue(f"{after!r} is not a page key; give the `next` key of the previous page")
    return int(faces), int(person)
