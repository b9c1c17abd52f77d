"""`facefind` command line: a thin shell over the library. Every command takes --db and --json."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import sqlalchemy
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

try:  # newer Typer releases bundle their own Click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException  # type: ignore[assignment]

from . import evaluate as evaluation
from . import limits
from .accountability.confirmations import Candidate
from .accountability.confirmations import check_required as check_confirmations
from .catalog import embedded
from .engine import DEFAULT_MAX_FMR, DEFAULT_MAX_FPIR, FaceFind
from .errors import FacefindError
from .paths import for_json, shown, undecodable
from .results import IndexReport, Match, Person, SearchResult, Verification

app = typer.Typer(
    help="Self-hosted, consent-first face search over your own photos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

EXIT_COMPLETED_WITH_ERRORS = 3
EXIT_INTERRUPTED = 130

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="FACEFIND_DB",
        help="Catalog file (default: FACEFIND_DB, else catalog.db in the per-user data directory).",
    ),
]
Json = Annotated[
    bool,
    typer.Option(
        "--json",
        help=(
            "Print one JSON document on stdout, nothing else; an error is the document "
            '{"error": {"type", "message"}}, with the same exit status.'
        ),
    ),
]
Workers = Annotated[int | None, typer.Option("--workers", help="Processes (default: cores).")]
MaxFmr = Annotated[
    float | None,
    typer.Option(
        "--max-fmr",
        help=f"Threshold as the highest acceptable false-match rate (default {DEFAULT_MAX_FMR:g}).",
    ),
]
Threshold = Annotated[
    float | None, typer.Option("--threshold", help="Threshold as a cosine similarity (experts).")
]
MaxFpir = Annotated[
    float | None,
    typer.Option(
        "--max-fpir",
        help=(
            "Highest acceptable share of searches for someone NOT in the catalog that return anyone, "
            f"at the number of faces searched (default {DEFAULT_MAX_FPIR:g})."
        ),
    ),
]
SearchMaxFmr = Annotated[
    float | None,
    typer.Option("--max-fmr", help="Experts: threshold by false-match rate per comparison instead of FPIR."),
]


Actor = Annotated[
    str | None,
    typer.Option(
        "--actor", envvar="FACEFIND_ACTOR", help="Who is acting, for the audit log (default: OS user)."
    ),
]
Purpose = Annotated[
    str | None,
    typer.Option(
        "--purpose", help="Why (required for searches; a case number is fine); kept in the audit log."
    ),
]


def main() -> None:
    """The `facefind` command. An argument that is not valid UTF-8 may only be a file name."""
    global json_errors
    json_errors = "--json" in sys.argv[1:]  # every command takes --json; errors follow it too
    for arg in sys.argv[1:]:
        if undecodable(arg) and not os.path.lexists(arg):
            report_error(
                f"the argument '{shown(arg)}' is not valid UTF-8 text and names no existing file; "
                "give names, purposes and notes in UTF-8",
                "UsageError",
            )
            raise SystemExit(2)
    command = typer.main.get_command(app)
    plain_help(command)
    if not json_errors:
        command(prog_name="facefind")
        return
    try:  # errors of the parser (unknown option, bad value) as JSON too
        code = command.main(prog_name="facefind", standalone_mode=False)
    except ClickException as e:
        report_error(e.format_message(), "UsageError" if e.exit_code == 2 else type(e).__name__)
        raise SystemExit(e.exit_code) from None
    except typer.Abort:
        report_error("aborted", "Aborted")
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)


# With --json, an error is one JSON document on stdout ({"error": {"type", "message"}}); set by main.
json_errors = False


def report_error(message: str, kind: str) -> None:
    """Say what went wrong: `message` is plain text (file names already `shown`)."""
    if json_errors:
        sys.stdout.write(json.dumps({"error": {"type": kind, "message": message}}) + "\n")
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def fail(message: str, code: int = 2, kind: str = "UsageError") -> NoReturn:
    """Report an error and exit with `code` (2: the command was given wrongly)."""
    report_error(message, kind)
    raise typer.Exit(code)


def failed(e: FacefindError) -> NoReturn:
    fail(shown(limits.cli_message(e)), e.exit_code, type(e).__name__)


@contextmanager
def session(db: str | None, actor: str | None = None) -> Iterator[FaceFind]:
    """Open the catalog; turn our errors into a clean message and exit status."""
    try:
        with FaceFind(db, actor=actor) as ff:
            yield ff
    except FacefindError as e:
        failed(e)
    except sqlalchemy.exc.OperationalError as e:
        fail(
            f"the catalog could not be written or read ({shown(str(e.orig))}). "
            "Is the disk full, the file read-only, or another program holding a lock? "
            "Nothing already stored was lost.",
            1,
            "CatalogError",
        )
    except KeyboardInterrupt:
        message = "interrupted: nothing already stored was lost; run the same command again to continue"
        if json_errors:
            report_error(message, "Interrupted")
        else:
            err.print(message)
        raise typer.Exit(EXIT_INTERRUPTED) from None


# Help ---------------------------------------------------------------------------------------
# What each option's value is, in help and usage (instead of Typer's `<str>`); others by type.
VALUE_NAMES = {
    "--db": "FILE|URL",
    "--actor": "NAME",
    "--by": "NAME",
    "--collection": "NAME",
    "--model": "NAME",
    "--name": "NAME",
    "--owner": "NAME",
    "--role": "ROLE",
    "--person": "ID",
    "--into": "ID",
    "--max-fmr": "RATE",
    "--max-fpir": "RATE",
    "--threshold": "SIMILARITY",
    "--since": "DATE",
    "--until": "DATE",
    "--expires": "DATE",
    "--retention": "PERIOD",
    "--audit-older-than": "PERIOD",
    "--root": "FOLDER",
    "--remove-root": "FOLDER",
    "--output": "FILE",
    "--chart": "FILE",
    "--plot": "FILE",
    "--host": "ADDRESS",
    "--allowed-host": "HOST",
    "--color": "rgb|bgr",
    "--sha256": "HEX",
    "--expect-head": "HASH",
    "--scope": "USES",
    "--kind": "KIND",
    "--basis": "BASIS",
    "--input": "PIXELS",
}
BY_TYPE = {"int": "N", "float": "NUMBER", "Path": "PATH"}


def plain_help(command: Any) -> None:
    """Help texts are plain text (Rich must not read `[server]` as markup); a flag shows no
    value and a value its name (VALUE_NAMES), never Typer's `<bool>` or `<str>`; for every command."""
    if command.help:
        command.help = escape(command.help)
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if getattr(param, "help", None):
            param.help = escape(param.help)
        if param.param_type_name == "argument":
            param.metavar = param.metavar or param.name.upper()
            setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010 (the name says it)
        elif getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.metavar is None:
            bare = param.bare_type() if hasattr(param, "bare_type") else ""
            bare = bare.removeprefix("list[").removesuffix("]")
            param.metavar = VALUE_NAMES.get(param.opts[0], BY_TYPE.get(bare, "TEXT"))
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


def show_version(value: bool) -> None:
    if value:
        try:
            version = importlib.metadata.version("facefind")
        except importlib.metadata.PackageNotFoundError:
            version = "(not installed: run from a checkout)"
        out.print(f"facefind {version}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


def safe(value: object) -> str:
    """Text from a user or a file name, printable as is: no Rich markup, no control characters.
    An error is worded for the command line (a value out of range named by its flag)."""
    return escape(shown(limits.cli_message(value) if isinstance(value, Exception) else str(value)))


def as_json_text(data: Any, indent: int | None = 2) -> str:
    """`data` (models, lists of them, plain values) as JSON with every text in its
    `paths.for_json` form: what --json and `audit export` write."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    compact = None if indent else (",", ":")
    return json.dumps(for_json(data), indent=indent, separators=compact, default=lambda v: for_json(str(v)))


def emit_json(data: Any) -> None:
    sys.stdout.write(as_json_text(data) + "\n")


def reply(data: Any, as_json: bool, lines: Iterable[str] | str) -> None:
    """`data` as one JSON document with --json; otherwise the human-readable line(s)."""
    if as_json:
        emit_json(data)
        return
    for line in [lines] if isinstance(lines, str) else lines:
        out.print(line)


@contextmanager
def progress_bar(label: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """Rich bar with count, rate and ETA on a terminal; plain lines on stderr otherwise."""
    if quiet or not err.is_terminal:
        started, last = time.monotonic(), [0.0]

        def plain(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < 5 and done != total:
                return
            last[0] = now
            rate = done / max(now - started, 1e-9)
            eta = f"{(total - done) / rate:.0f}s" if rate else "?"
            print(f"{label}: {done}/{total} ({rate:.1f}/s, ETA {eta})", file=sys.stderr, flush=True)

        yield plain
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    bar = Progress(*columns, console=err, transient=False)
    task = bar.add_task(label, total=None, rate="")
    started = time.monotonic()

    def update(done: int, total: int) -> None:
        if not bar.live.is_started:  # only show a bar once there is something to report
            bar.start()
        rate = done / max(time.monotonic() - started, 1e-9)
        bar.update(task, completed=done, total=total, rate=f"{rate:.1f}/s")

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


@app.command()
def index(
    photos: Annotated[Path, typer.Argument(help="Folder (searched recursively) or single photo.")],
    collection: Annotated[str, typer.Option(help="Collection to index into.")] = "default",
    workers: Workers = None,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="Try again files that failed before, even if unchanged.")
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="SCHEDULER",
            help=(
                "Analyse photos on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for "
                "--workers Dask workers on this machine. Every worker must see PHOTOS at the same path "
                "and have facefind and its models (FACEFIND_MODELS)."
            ),
        ),
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Detect, align and embed every face under PHOTOS. Re-runs only do what changed."""
    with session(db) as ff, progress_bar("indexing", as_json) as on_progress:
        report = ff.index(
            photos,
            collection=collection,
            workers=workers,
            on_progress=on_progress,
            retry_errors=retry_errors,
            dask=dask,
        )
    if as_json:
        emit_json(report)
    else:
        _print_index_report(report)
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.errors:
        raise typer.Exit(EXIT_COMPLETED_WITH_ERRORS)


def _print_index_report(r: IndexReport) -> None:
    out.print(
        f"{safe(r.root)}: {r.files_seen} photos seen; {r.indexed} indexed, {r.unchanged} unchanged, "
        f"{r.removed} removed from the catalog; {_faces_found(r)} "
        f"({r.faces_searchable} searchable) in {r.seconds:.1f}s ({r.images_per_second:.1f} images/s)."
    )
    for e in r.error_files[:20]:
        earlier = " [dim](as on an earlier run: unchanged since; --retry-errors tries again)[/]"
        out.print(f"  skipped {safe(e.path)}: {safe(e.error)}{earlier if e.earlier else ''}")
    if len(r.error_files) > 20:
        out.print(f"  ... and {len(r.error_files) - 20} more (`facefind errors` lists them all)")
    for e in r.damaged_files[:20]:
        out.print(f"  indexed despite damage {safe(e.path)}: {safe(e.error)}")
    if len(r.damaged_files) > 20:
        out.print(f"  ... and {len(r.damaged_files) - 20} more damaged (`--json` lists them all)")
    if r.people is not None and r.people.faces_considered:
        out.print(
            f"people: {r.people.faces_assigned} new face(s) joined persons, {r.people.new_persons} new "
            f"person(s); {r.people.persons} persons in all (`facefind people list`)."
        )
    if r.interrupted:
        out.print("[yellow]interrupted[/]: everything above is saved; run the same command to continue.")
    elif r.errors:
        out.print(f"[yellow]completed with {r.errors} error(s)[/]")
    else:
        out.print("completed")


@app.command()
def search(
    query: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Photo of the face(s) to look for; several photos of one person are searched as one query."
        ),
    ] = None,
    person: Annotated[
        int | None, typer.Option("--person", help="Instead of a photo: every photo of this person.")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Most matches per face.")] = 10,
    max_fpir: MaxFpir = None,
    max_fmr: SearchMaxFmr = None,
    threshold: Threshold = None,
    face: Annotated[
        int | None, typer.Option("--face", help="Search only face N of the query (0 = largest).")
    ] = None,
    collection: Annotated[
        list[str] | None,
        typer.Option("--collection", help="Search only this collection (repeat for several)."),
    ] = None,
    include_low_quality: Annotated[
        bool,
        typer.Option(
            "--include-low-quality", help="Also match faces too small or blurred to be searched by default."
        ),
    ] = False,
    purpose: Purpose = None,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Find catalogued faces of the person(s) in QUERY, with similarity and false-match rate.

    Several QUERY photos are of one person: the largest face of each, searched as one query."""
    query = query or None
    if (query is None) == (person is None):
        fail("give a photo to search with, or --person ID (not both)")
    if person is not None:
        with session(db, actor) as ff:
            found = ff.people.get(person)
            photos = ff.person_photos(person, purpose=purpose)
        if as_json:
            emit_json({"person": _person_summary(found), "photos": photos})
            return
        out.print(f"person {found.id} ({safe(found.name or 'unnamed')}): {len(photos)} photo(s)")
        for path in photos:
            out.print(f"  {safe(path)}")
        return
    assert query is not None
    with session(db, actor) as ff, progress_bar("rebuilding vector index", as_json) as on_progress:
        ff._purpose(purpose)  # refuse before any work
        ff.vector_index(on_progress)
        result = ff.search(
            query[0] if len(query) == 1 else tuple(query),
            purpose=purpose,
            collections=collection,
            top_k=top_k,
            max_fpir=max_fpir,
            max_fmr=max_fmr,
            threshold=threshold,
            face=face,
            include_low_quality=include_low_quality,
        )
    if as_json:
        emit_json(result)
    else:
        _print_search(result)


def _faces_found(r: IndexReport) -> str:
    """Faces refused by an opt-out were found too: say so, not "0 faces found"."""
    if not r.faces_refused:
        return f"{r.faces_found} faces found"
    return f"{r.faces_found + r.faces_refused} faces found, {r.faces_refused} refused by opt-outs"


def _print_search(r: SearchResult) -> None:
    if r.faces_searched == 0:
        err.print(
            "[yellow]note:[/] the catalog holds no searchable faces yet: run `facefind index PHOTOS` first"
        )
    if r.rule == "fpir":
        rule = f"at most {r.max_fpir:g} of searches for someone not in them return anyone"
    elif r.rule == "fmr":
        rule = f"max FMR {r.max_fmr:g} per comparison"
    else:
        rule = "given threshold"
    out.print(f"{r.faces_searched} faces searched; threshold {r.threshold:.3f} ({rule})")
    if r.threshold_extrapolated:
        out.print(
            "  [dim]the threshold is extrapolated (the calibration's tail model, its 95% bound): at this "
            "many faces, calibrate with labelled photos of many people (`facefind calibrate`)[/]"
        )
    if r.fused:
        out.print(
            f"one person in {len(r.fused)} photos, searched as one query (the FPIR shared between them)"
        )
    for n, p in enumerate(r.fused, 1):
        like = "" if p.similarity_to_first is None else f", similarity to photo 1 {p.similarity_to_first:.3f}"
        out.print(
            f"  photo {n}: {safe(p.query)}: face at x={p.box.x:.0f} y={p.box.y:.0f} "
            f"{p.box.w:.0f}x{p.box.h:.0f}{like}",
            soft_wrap=True,
        )
        for warning in p.warnings:
            out.print(f"    [yellow]warning:[/] {warning}")
    for qf in r.faces:
        if not r.fused:
            out.print(f"face {qf.face} at x={qf.box.x:.0f} y={qf.box.y:.0f} {qf.box.w:.0f}x{qf.box.h:.0f}")
        for warning in qf.warnings:
            out.print(f"  [yellow]warning:[/] {warning}; results are less reliable")
        if not qf.matches:
            out.print(f"  no match (nothing reaches similarity {r.threshold:.3f})")
            continue
        for n, m in enumerate(qf.matches, 1):
            out.print(
                f"  {n:>3}  similarity {m.similarity:.3f}  "
                f"FPIR {_rate(m.fpir, m.fpir_upper, m.extrapolated)}  {_person(m)}{safe(m.path)}  "
                f"[dim]({m.box.x:.0f},{m.box.y:.0f} {m.box.w:.0f}x{m.box.h:.0f})[/]",
                soft_wrap=True,
            )


def _person(m: Match) -> str:
    """`person N (name)  ` of a match grouped into a person (its id for `people show`)."""
    if m.person_id is None:
        return ""
    return f"person {m.person_id} ({safe(m.person or 'unnamed')})  "


def _rate(value: float, upper: float, extrapolated: bool) -> str:
    """A measured rate as is; an extrapolated one only as its upper bound, and said to be one."""
    if extrapolated:
        return f"<{upper:.0e} (extrapolated)"
    return f"{value:.1e}" if value < 0.01 else f"{value:.2f}"


def _fmr(value: float, floor: float) -> str:
    """Scores above every calibration impostor only bound the FMR from above."""
    return f"<{floor:.1e}" if value <= floor else f"{value:.1e}"


@app.command()
def verify(
    a: Annotated[Path, typer.Argument(help="First photo.")],
    b: Annotated[Path, typer.Argument(help="Second photo.")],
    max_fmr: MaxFmr = None,
    threshold: Threshold = None,
    purpose: Purpose = None,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Do A and B show the same person? (The largest face of each is compared; audited.)"""
    with session(db, actor) as ff:
        result = ff.verify(a, b, max_fmr=max_fmr, threshold=threshold, purpose=purpose)
    if as_json:
        emit_json(result)
    else:
        _print_verify(result)


def _print_verify(v: Verification) -> None:
    verdict = "[green]same person[/]" if v.same_person else "[red]different people[/]"
    out.print(
        f"{verdict}: similarity {v.similarity:.3f} (threshold {v.threshold:.3f}); "
        f"different people score this high in {_fmr(v.fmr, v.fmr_floor)} of pairs"
    )


@app.command()
def redact(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the redacted copies (nothing in it is replaced).")
    ],
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(help="Photos, folders of photos, or video files (MP4, MOV, MKV, WebM) to publish."),
    ] = None,
    keep: Annotated[
        str,
        typer.Option("--keep", help="consented: faces with publication consent stay; none: hide all."),
    ] = "consented",
    style: Annotated[str | None, typer.Option("--style", help="blur (default), pixelate or fill.")] = None,
    margin: Annotated[
        float | None,
        typer.Option("--margin", help="Grow hidden boxes by this share of their size (0.2)."),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="Re-apply this (edited) manifest to its photo or video instead."),
    ] = None,
    purpose: Purpose = None,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Copies of photos to publish: faces with publication consent kept, every other face hidden."""
    with session(db, actor) as ff, progress_bar("redacting", as_json) as on_progress:
        report = ff.redact(
            inputs or [], out_dir, keep=keep, style=style, margin=margin, purpose=purpose, manifest=manifest,
            on_progress=on_progress,
        )  # fmt: skip
    if as_json:
        emit_json(report)
    else:
        for p in report.photos:
            persons = f" (persons {', '.join(map(str, p.kept_persons))})" if p.kept_persons else ""
            out.print(f"{safe(p.output)}: {p.hidden} face(s) hidden, {p.kept} kept{persons}")
        for v in report.videos:
            persons = f" (persons {', '.join(map(str, v.kept_persons))})" if v.kept_persons else ""
            out.print(
                f"{safe(v.output)}: {v.frames} frames, {v.hidden} face track(s) hidden, {v.kept} kept"
                f"{persons} ({v.fps_processed:.1f} frames/s)"
            )
        for e in report.errors:
            err.print(f"[red]skipped[/] {safe(e.path)}: {safe(e.error)}")
        videos = f" and {len(report.videos)} video(s)" if report.videos else ""
        out.print(f"{len(report.photos)} photo(s){videos} written to {safe(report.out)}")
    if report.errors:
        raise typer.Exit(EXIT_COMPLETED_WITH_ERRORS)


@app.command("publish-check")
def publish_check(
    folder: Annotated[Path, typer.Argument(help="Photo or folder of photos about to be published.")],
    purpose: Purpose = None,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Which photos show faces without publication consent (nothing is written; audited)."""
    with session(db, actor) as ff, progress_bar("checking", as_json) as on_progress:
        result = ff.publish_check(folder, purpose=purpose, on_progress=on_progress)
    if as_json:
        emit_json(result)
    else:
        for c in result.flagged:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(c.reasons.items()))
            out.print(f"{safe(c.path)}: {c.hidden} of {c.faces} face(s) without publication consent ({why})")
        for e in result.errors:
            err.print(f"[red]skipped[/] {safe(e.path)}: {safe(e.error)}")
        out.print(f"{len(result.flagged)} of {result.photos} photo(s) show faces without publication consent")
    if result.errors:
        raise typer.Exit(EXIT_COMPLETED_WITH_ERRORS)


@app.command()
def evaluate(
    labelled: Annotated[
        list[Path],
        typer.Argument(
            help="One or more folders of PERSON/IMAGE folders (the face nearest each photo's centre is "
            "the labelled one; people are told apart per folder)."
        ),
    ],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write DET (1:1 and 1:N) and ROC curves to this PNG.")
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            exists=True,
            dir_okay=False,
            help="LFW-style pairs (tab-separated: fold, person_a, image_a, person_b, image_b, same): "
            "also report the 10-fold pairs accuracy.",
        ),
    ] = None,
    max_fpir: MaxFpir = None,
    max_fmr: MaxFmr = None,
    threshold: Threshold = None,
    workers: Workers = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Accuracy on your own labelled photos: TAR at FAR, EER, open-set FNIR at FPIR (identities
    left out of the gallery), the FPIR search's default decision gives, per-group rates; for
    folders with people of one photo (LFW-style), the open-set table: gallery = all photos but the
    first of each person with 2+, mated probes = those first photos, strangers = people with one."""
    from .evaluate import load_labelled

    with session(db) as ff, progress_bar("embedding", as_json) as on_progress:
        cut = ff.threshold(max_fmr, threshold)
        labelled_set = load_labelled(labelled, ff.settings, workers, lambda: ff.backend, on_progress)
        result = evaluation.report(
            labelled_set, cut, ff.calibration(), DEFAULT_MAX_FPIR if max_fpir is None else max_fpir, pairs
        )
        if plot:
            evaluation.plot({"facefind": labelled_set}, plot)
            result["plot"] = str(plot)
    if as_json:
        emit_json(result)
        return
    v, ident = result["verification"], result["identification"]
    out.print(
        f"{result['folder']}: {result['images']} images, {result['identities']} identities, "
        f"{result['failures_to_detect']} failures to detect, {result['unreadable']} unreadable "
        "(counted as errors)"
    )
    table = Table("metric", "value", show_edge=False, pad_edge=False)
    rows = [("genuine / impostor pairs", f"{v['genuine_pairs']} / {v['impostor_pairs']}")]
    for far in evaluation.FARS:
        tar = v[f"tar_at_far_{far:g}"]
        rows.append(
            (
                f"TAR at FAR {far:g}",
                "n/a (too few pairs)"
                if tar is None
                else f"{tar:.4f} (threshold {v[f'threshold_at_far_{far:g}']:.3f})",
            )
        )
    rows.append(("EER", f"{v['eer']:.4f}" if v["eer"] is not None else "n/a"))
    if "rank1" in ident:
        rows.append(
            (
                "1:N trials (identities left out)",
                f"{ident['splits']} splits, gallery ~{ident['gallery_faces']} faces, "
                f"{ident['mated_probes']} mated / {ident['non_mated_probes']} non-mated probes",
            )
        )
        rows.append(("rank-1", f"{ident['rank1']:.4f}"))
        for fpir, fnir in ident["fnir_at_fpir"].items():
            rows.append((f"FNIR at FPIR {fpir}", f"{fnir:.4f}"))
        d, old = ident["default"], ident["per_comparison_rule"]
        rows.append(
            (
                f"search default (FPIR {d['stated_fpir']:g})",
                f"measured FPIR {d['measured_fpir']:.4f}, FNIR {d['fnir']:.4f} "
                f"(threshold ~{d['threshold']:.3f})",
            )
        )
        rows.append(
            (
                f"per-comparison FMR {old['max_fmr']:g}",
                f"measured FPIR {old['measured_fpir']:.4f}, FNIR {old['fnir']:.4f}",
            )
        )
    for metric, value in rows:
        table.add_row(metric, value)
    out.print(table)
    if "per_group" in result:
        pg = result["per_group"]
        gt = Table(
            "group",
            "identities",
            "FMR",
            "FNMR",
            "impostor pairs",
            "genuine pairs",
            title=f"per group at threshold {pg['threshold']:.3f}",
            show_edge=False,
        )
        for name, g in pg["groups"].items():
            gt.add_row(
                name,
                str(g["identities"]),
                str(g["fmr"]),
                str(g["fnmr"]),
                str(g["impostor_pairs"]),
                str(g["genuine_pairs"]),
            )
        out.print(gt)
    if "open_set" in result:
        _print_open_set_table(result["open_set"])
    if "pairs" in result:
        _print_pairs(result["pairs"])
    if plot:
        out.print(f"plot written to {safe(plot)}")


def _print_open_set_table(o: dict) -> None:
    table = Table("open-set search", "value", show_edge=False, pad_edge=False, title=o["protocol"])
    table.add_row("gallery", f"{o['gallery_faces']} faces of {o['gallery_people']} people")
    table.add_row("mated / non-mated probes", f"{o['mated_probes']} / {o['non_mated_probes']}")
    table.add_row("probes without a face", str(o["probes_without_face"]))
    table.add_row("rank-1", f"{o['rank1']:.4f}")
    for fpir, fnir in o["fnir_at_fpir"].items():
        table.add_row(f"FNIR at measured FPIR {fpir}", f"{fnir:.4f}")
    if "default" in o:
        d = o["default"]
        extrapolated = " (extrapolated: the tail model)" if d.get("threshold_extrapolated") else ""
        table.add_row("threshold (search default)", f"{d['threshold']:.3f}{extrapolated}")
        table.add_row("stated FPIR", f"{d['stated_fpir']:g}")
        table.add_row(
            "measured FPIR",
            f"{d['measured_fpir']:.4f} ({d['false_positives']} of {o['non_mated_probes']} strangers; "
            f"95% CI {d['fpir_ci95'][0]:.4f}-{d['fpir_ci95'][1]:.4f})",
        )
        table.add_row(
            "FNIR (right person not first above it)",
            f"{d['fnir']:.4f} ({d['misses']} of {o['mated_probes']}; "
            f"95% CI {d['fnir_ci95'][0]:.4f}-{d['fnir_ci95'][1]:.4f})",
        )
    out.print(table)


def _print_pairs(p: dict) -> None:
    table = Table(
        "fold", "pairs", "threshold", "accuracy", show_edge=False, title=f"pairs: {safe(p['file'])}"
    )
    for row in p["folds"]:
        table.add_row(row["fold"], str(row["pairs"]), f"{row['threshold']:.3f}", f"{row['accuracy']:.4f}")
    se = "" if p["std_error"] is None else f" +- {p['std_error']:.4f}"
    table.add_row("all", str(p["pairs"]), "", f"{p['accuracy']:.4f}{se}")
    out.print(table)
    out.print(
        f"{p['pairs']} pairs ({p['same']} same, {p['different']} different); threshold of each fold chosen "
        f"on the others; {p['pairs_with_a_photo_without_face']} pairs with a photo without a face (counted "
        "as 'different')"
    )


@app.command()
def calibrate(
    labelled: Annotated[
        list[Path],
        typer.Argument(
            help="One or more folders of PERSON/IMAGE folders (the face nearest each photo's centre is "
            "the labelled one; people are told apart per folder)."
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the table to this JSON file.")
    ] = None,
    workers: Workers = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Calibrate this registered recognizer (default: the one in use)."),
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Rebuild the similarity -> false-match-rate table from your own labelled photos (several folders
    pool their people; pairs are formed within each folder)."""
    with session(db) as ff, progress_bar("embedding", as_json) as on_progress:
        calibration = ff.calibrate(labelled, workers=workers, on_progress=on_progress, model=model)
    table = calibration.to_dict()
    if output:
        output.write_text(json.dumps(table, indent=1) + "\n")
    if as_json:
        emit_json(table)
        return
    out.print(
        f"calibrated {calibration.model_id} on {calibration.source}: "
        f"{calibration.impostor_pairs} impostor pairs, {calibration.genuine_pairs} genuine pairs"
    )
    if calibration.tail:
        out.print(
            f"  measured down to FMR {calibration.measured_floor:.1e} (where 10 impostor pairs still pass); "
            "below that the tail model extrapolates, and says so"
        )
        out.print(
            f"  search's default (FPIR {DEFAULT_MAX_FPIR:g}) is measured for galleries of up to "
            f"{calibration.largest_measured_gallery(DEFAULT_MAX_FPIR):,} faces; beyond, its threshold "
            "is extrapolated"
        )
    for fmr in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9):
        band = calibration.threshold_band(fmr)
        if band is None and fmr < calibration.measured_floor:
            continue  # an old-style table cannot say
        how = "measured" if band is None else f"extrapolated, 90% between {band[0]:.3f} and {band[1]:.3f}"
        out.print(f"  FMR {fmr:g}: similarity {calibration.threshold(fmr):.3f} ({how})")
    if calibration.tail:
        t = calibration.tail
        out.print(
            f"  tail model: generalised Pareto above {t.start:.3f} (top {t.rate:.1%} of impostor pairs), "
            f"shape {t.shape:.3f}, scale {t.scale:.4f}; "
            f"{len(calibration.tail_resamples)} identity-bootstrap refits"
        )


@app.command("index-info")
def index_info(db: Db = None, as_json: Json = False) -> None:
    """The vector index: kind, size, memory, estimated recall@10."""
    with session(db) as ff, progress_bar("rebuilding vector index", as_json) as on_progress:
        info = ff.index_info(on_progress)
    if as_json:
        emit_json(info)
        return
    recall = info["recall_at_10_estimate"]
    out.print(
        f"{info['kind']} index of {info['model_id']}: {info['faces']} faces "
        f"({info['deleted_not_compacted']} deleted, awaiting compaction), "
        f"{info['memory_bytes'] / 2**20:.1f} MiB ({info['bytes_per_face']:.0f} bytes/face), "
        f"recall@10 {'n/a' if recall is None else f'~{recall:.3f}'}; selection: {info['policy']}"
    )
    if info["rebuilt_because"]:
        out.print(f"rebuilt from the catalog because {info['rebuilt_because']}")


@app.command()
def reindex(
    kind: Annotated[
        str,
        typer.Option(
            "--kind", help="auto (by catalog size), flat (exact), pq, hnsw or ivf; kept for later runs."
        ),
    ] = "auto",
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Rebuild the vector index from the catalog (also reclaims the space of deleted faces)."""
    with session(db) as ff, progress_bar("rebuilding vector index", as_json) as on_progress:
        info = ff.reindex(kind, on_progress)
    if as_json:
        emit_json(info)
    else:
        out.print(
            f"rebuilt: {info['kind']} index, {info['faces']} faces, "
            f"recall@10 ~{info['recall_at_10_estimate']}"
        )


@app.command()
def errors(
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Every file that could not be indexed, with the reason."""
    with session(db) as ff:
        failed = ff.errors(collection)
    reply(
        failed,
        as_json,
        [f"{safe(e.collection)}: {safe(e.path)}: {safe(e.error)}" for e in failed] or ["no failed files"],
    )


@app.command()
def stats(db: Db = None, as_json: Json = False) -> None:
    """What the catalog holds."""
    with session(db) as ff:
        data = ff.stats()
    if as_json:
        emit_json(data)
        return
    out.print(f"catalog {safe(data['db'])} (schema {data['schema_version']})")
    out.print(
        f"  images: {data['images']} ({data['images_indexed']} indexed, "
        f"{data['images_with_errors']} with errors, {data['images_without_faces']} without faces)"
    )
    out.print(f"  faces: {data['faces']} ({data['faces_searchable']} searchable)")
    for name, n in data["collections"].items():
        out.print(f"  collection {safe(name)}: {n} images")
    for e in data["recent_errors"]:
        out.print(f"  error x{e['count']}: {safe(e['error'])}")


# people -----------------------------------------------------------------------------------
people_app = typer.Typer(
    help="Faces grouped into persons: list, name, merge, split, hide.", no_args_is_help=True
)
app.add_typer(people_app, name="people")
PersonId = Annotated[int, typer.Argument(help="Person id (see `facefind people list`).")]
FaceIds = Annotated[
    list[int], typer.Option("--face", help="Face id (repeat for several; see `people show`).")
]


def _person_summary(p: Person, with_faces: bool = True) -> dict:
    data: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "hidden": p.hidden,
        "face_count": p.face_count,
        "cover": p.cover.model_dump(mode="json") if p.cover else None,
    }
    if with_faces:
        data["faces"] = [{"face_id": f.face_id, "path": f.path, "pinned": f.pinned} for f in p.faces]
    return data


def _print_person(p: Person, faces: bool) -> None:
    flags = " [dim](hidden)[/]" if p.hidden else ""
    cover = f"  cover {safe(p.cover.path)}" if p.cover else ""
    name = safe(p.name) if p.name else "[dim]unnamed[/]"
    out.print(f"person {p.id:>5}  {name}{flags}  {p.face_count} face(s){cover}")
    if faces:
        for f in p.faces:
            pin = "  [dim](placed by you)[/]" if f.pinned else ""
            out.print(f"  face {f.face_id:>7}  quality {f.quality:.2f}  {safe(f.path)}{pin}")


@people_app.command("list")
def people_list(
    include_hidden: Annotated[bool, typer.Option("--all", help="Include hidden persons.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Persons on this page (default: all).")] = None,
    after: Annotated[
        str | None, typer.Option("--after", help="The page key the previous page printed (next page).")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Persons, most faces first, with the photo of every face (--json); audited as a view."""
    with session(db) as ff:
        found, following = ff.persons_page(include_hidden, limit=limit, after=after)
    if as_json:
        emit_json([_person_summary(p) for p in found])
        return
    if not found:
        out.print("no persons yet: `facefind index PHOTOS` groups faces as it goes")
    for p in found:
        _print_person(p, faces=False)
    if following:
        out.print(f"next page: facefind people list --limit {limit} --after {following}")


@people_app.command("show")
def people_show(person: PersonId, db: Db = None, as_json: Json = False) -> None:
    """One person and each of their faces, best quality first (if their consent allows showing them)."""
    with session(db) as ff:
        found = ff.person(person)
    emit_json(found) if as_json else _print_person(found, faces=True)


@people_app.command("photos")
def people_photos(
    person: PersonId, purpose: Purpose = None, actor: Actor = None, db: Db = None, as_json: Json = False
) -> None:
    """Every photo a person is in: a search by person, so a purpose is required and it is audited."""
    with session(db, actor) as ff:
        photos = ff.person_photos(person, purpose=purpose)
    if as_json:
        emit_json(photos)
    else:
        for path in photos:
            out.print(safe(path))


@people_app.command("name")
def people_name(
    person: PersonId,
    name: Annotated[str | None, typer.Argument(help="The name to give.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the name.")] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Name a person; the name and id survive every re-clustering."""
    if (name is None) == (not clear):
        fail("give a NAME, or --clear to remove the name")
    with session(db) as ff:
        found = ff.people.unname(person) if clear else ff.people.name(person, name or "")
    emit_json(found) if as_json else _print_person(found, faces=False)


@people_app.command("merge")
def people_merge(
    persons: Annotated[list[int], typer.Argument(help="Person ids to merge into --into.")],
    into: Annotated[int, typer.Option("--into", help="The person that remains.")],
    confirm: Annotated[
        bool,
        typer.Option("--confirm", help="They are one person: merge despite a name or consent on record."),
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Merge persons into one (the same person found twice); re-clustering keeps it merged."""
    with session(db) as ff:
        found = ff.people.merge(persons, into, confirm=confirm)
    emit_json(found) if as_json else _print_person(found, faces=False)


@people_app.command("split")
def people_split(
    person: PersonId,
    faces: FaceIds,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Move some faces of a person into a new person (two people taken for one)."""
    with session(db) as ff:
        found = ff.people.split(person, faces)
    emit_json(found) if as_json else _print_person(found, faces=True)


@people_app.command("remove")
def people_remove(person: PersonId, faces: FaceIds, db: Db = None, as_json: Json = False) -> None:
    """ "Not this person": take faces out of a person for good."""
    with session(db) as ff:
        found = ff.people.remove(person, faces)
    emit_json(found) if as_json else _print_person(found, faces=False)


@people_app.command("hide")
def people_hide(
    person: PersonId,
    unhide: Annotated[bool, typer.Option("--unhide", help="Show the person again.")] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Hide a person from `people list` (their faces stay grouped)."""
    with session(db) as ff:
        found = ff.people.hide(person, not unhide)
    emit_json(found) if as_json else _print_person(found, faces=False)


@people_app.command("review")
def people_review(
    limit: Annotated[int, typer.Option("--limit", help="Questions on this page (1..10000).")] = 20,
    after: Annotated[
        str | None, typer.Option("--after", help="The page key a previous page printed (next page).")
    ] = None,
    max_fmr: Annotated[
        float | None,
        typer.Option("--max-fmr", help="Ask only when the false match rate is at most this (default 0.01)."),
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Questions that name people fast: faces in no person and unnamed persons, each with the
    most similar named person, its similarity and false match rate; pairs of persons that may be
    one. Answer with `people answer`. Audited as a view."""
    with session(db) as ff:
        page = ff.suggestions(after=after, limit=limit, max_fmr=max_fmr)
    if as_json:
        emit_json(page)
        return
    if not page.suggestions:
        out.print(
            "nothing to review: no face outside a person and no unnamed person looks like a named "
            "person (or each was answered)"
        )
        return
    groups: dict[int | None, list[Any]] = {}
    for q in page.suggestions:
        groups.setdefault(q.candidate, []).append(q)
    for candidate, questions in groups.items():
        first = questions[0]
        if candidate is None:  # "together": faces in no person that may be one new person
            for q in questions:
                out.print(
                    f"are these one person? similarity {q.similarity:.3f}  FMR {_fmr(q.fmr, page.fmr_floor)}"
                )
                for face in q.faces:
                    out.print(f"  face:{face.face_id:<9} {safe(face.path)}")
                out.print(
                    f"  [dim]yes (those that are): facefind people answer {' '.join(q.items)} --together[/]"
                )
            continue
        who = f"person {candidate}" + (f" ({safe(first.candidate_name)})" if first.candidate_name else "")
        cover = f"  [dim]closest face {first.candidate_face.face_id}: {safe(first.candidate_face.path)}[/]"
        out.print(f"is this {who}?{cover if first.candidate_face else ''}")
        for q in questions:
            what = safe(q.faces[0].path) if q.faces else ""
            size = f"{q.face_count} face(s) " if q.item.startswith("person:") else ""
            skipped = " [dim](skipped before)[/]" if q.skipped else ""
            fmr = _fmr(q.fmr, page.fmr_floor)
            out.print(f"  {q.item:<14} similarity {q.similarity:.3f}  FMR {fmr}  {size}{what}{skipped}")
        items = " ".join(q.item for q in questions)
        out.print(f"  [dim]all yes: facefind people answer {items} --yes {candidate}[/]")
    out.print(f"{page.total} question(s) in the queue.")
    if page.next:
        out.print(f"next page: facefind people review --after {page.next}")


@people_app.command("answer")
def people_answer(
    items: Annotated[
        list[str], typer.Argument(help="face:ID or person:ID, as `people review` lists them (several: bulk).")
    ],
    yes: Annotated[int | None, typer.Option("--yes", help="They are this person.")] = None,
    no: Annotated[int | None, typer.Option("--no", help="They are not this person (remembered).")] = None,
    skip: Annotated[bool, typer.Option("--skip", help="Ask again after every other question.")] = False,
    together: Annotated[
        bool, typer.Option("--together", help="These faces in no person are one new person.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Answer review questions: --yes PERSON puts the items in that person (pinned), --no PERSON
    says they are not (clustering never gives them to it), --skip asks later, --together makes
    faces in no person one new person (pinned; name it next). Audited."""
    with session(db) as ff:
        answers = ff.review.answer(items, yes=yes, no=no, skip=skip, together=together)
    if as_json:
        emit_json(answers)
        return
    for a in answers:
        if a.answer == "yes":
            out.print(f"{a.item}: now person {a.person} ({len(a.moved_faces)} face(s) moved)")
        elif a.answer == "no":
            out.print(f"{a.item}: not person {a.person} (remembered)")
        else:
            out.print(f"{a.item}: skipped (asked again after the other questions)")


@people_app.command("min-template")
def people_min_template(
    px: Annotated[int, typer.Argument(help="Shorter side in pixels; 0 keeps a template for every face.")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Data minimisation: faces smaller than PX in photos indexed from now on get no template at all."""
    with session(db) as ff:
        under = ff.people.set_min_template(px)
    if as_json:
        emit_json({"min_template_px": px, "stored_faces_under": under})
        return
    out.print(f"faces under {px} px indexed from now on get no template")
    if under:
        out.print(f"{under} stored face(s) are under it; they go when their photos are erased or re-indexed")


@people_app.command("cluster")
def people_cluster(
    full: Annotated[
        bool, typer.Option("--full", help="Re-cluster every face (keeps your decisions).")
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Group faces not yet grouped (indexing does this already), or everything again with --full."""
    with session(db) as ff:
        report = ff.people.recluster() if full else ff.people.update()
    if as_json:
        emit_json(report)
        return
    out.print(
        f"{report.mode}: {report.faces_considered} face(s) considered; {report.persons} persons "
        f"({report.new_persons} new), {report.unassigned} face(s) unassigned, in {report.seconds:.1f}s"
    )


# collections ------------------------------------------------------------------------------
# faces ------------------------------------------------------------------------------------
faces_app = typer.Typer(
    help="Faces by hand: add one the detector missed, remove a false one.", no_args_is_help=True
)
app.add_typer(faces_app, name="faces")


@faces_app.command("add")
def faces_add(
    photo: Annotated[Path, typer.Argument(help="An indexed photo.")],
    box: Annotated[str, typer.Option("--box", help="x,y,w,h in pixels (EXIF orientation applied).")],
    person: Annotated[int | None, typer.Option("--person", help="Put it in this person (pinned).")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Add a face the detector missed, embedded like a detected one (searchable, clustered). Audited."""
    with session(db) as ff:
        added = ff.add_face(photo, box, person=person)
    if as_json:
        emit_json(added)
        return
    where = f"person {added.person_id}" if added.person_id is not None else "no person yet"
    low = (
        "" if added.usable else " [yellow](below the quality minimum: searched with --include-low-quality)[/]"
    )
    out.print(
        f"face {added.face_id} added to {safe(added.path)} ({added.alignment} alignment, quality "
        f"{added.quality:.2f}), in {where}{low}"
    )


@faces_app.command("not-a-face")
def faces_not_a_face(
    face: Annotated[int, typer.Argument(help="Face id (see `people show`, search results).")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Remove a false detection for good: indexing the photo again does not bring it back. Audited."""
    with session(db) as ff:
        removed = ff.not_a_face(face)
    if as_json:
        emit_json(removed)
        return
    out.print(f"face {removed.face_id} removed from {safe(removed.path)}; it will not come back")


collection_app = typer.Typer(help="Collections of photos, each with an owner, a lawful basis and retention.")
app.add_typer(collection_app, name="collection")
Root = Annotated[
    list[str] | None,
    typer.Option(
        "--root",
        help="A folder the service may index this collection from (repeatable); the CLI indexes any path.",
    ),
]


Confirmations = Annotated[
    int | None,
    typer.Option(
        "--confirmations",
        metavar="N",
        help="Distinct people who must confirm a search's candidate before it is an identification "
        "(default 2, EU AI Act Art. 14(5); 1 needs --allow-single-confirmation).",
    ),
]
AllowSingle = Annotated[
    bool,
    typer.Option(
        "--allow-single-confirmation", help="Let one person's confirmation suffice (with --confirmations 1)."
    ),
]


DestroyAfter = Annotated[
    int | None,
    typer.Option(
        "--destroy-after-last-use",
        metavar="DAYS",
        help="Destroy photos DAYS after their last interaction: last indexed, or last returned by a "
        "search or shown as a crop (`facefind purge` applies it; BIPA Sec. 15(a): at most 3 years).",
    ),
]


@collection_app.command("create")
def collection_create(
    name: Annotated[str, typer.Argument(help="Collection name (used with `index --collection`).")],
    owner: Annotated[str, typer.Option("--owner", help="Person or body responsible for these photos.")],
    basis: Annotated[str, typer.Option("--basis", help="own | consent | contract | legitimate-interest")],
    retention: Annotated[str, typer.Option("--retention", help="How long faces are kept: 30d, 18m, 5y...")],
    note: Annotated[
        str | None, typer.Option("--note", help="Details; required for legitimate-interest.")
    ] = None,
    root: Root = None,
    destroy_after_last_use: DestroyAfter = None,
    confirmations: Confirmations = None,
    allow_single_confirmation: AllowSingle = False,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a collection with its lawful basis; photos can then be indexed into it."""
    with session(db, actor) as ff:
        if confirmations is not None:  # refused before the collection is made
            check_confirmations(confirmations, allow_single_confirmation)
        created = ff.create_collection(
            name, owner=owner, basis=basis, retention=retention, note=note, roots=root or []
        )
        if destroy_after_last_use is not None:
            created = ff.set_destroy_rule(name, destroy_after_last_use)
        if confirmations is not None:
            created = ff.set_confirmations(name, confirmations, allow_single=allow_single_confirmation)
    reply(
        created,
        as_json,
        f"collection {safe(created.name)}: owner {safe(created.owner)}, basis {created.basis}, "
        f"retention {created.retention_days} days, {_roots(created.roots)}",
    )


@collection_app.command("update")
def collection_update(
    name: Annotated[str, typer.Argument(help="The collection.")],
    root: Root = None,
    remove_root: Annotated[
        list[str] | None, typer.Option("--remove-root", help="A folder that is no longer an index root.")
    ] = None,
    destroy_after_last_use: DestroyAfter = None,
    confirmations: Confirmations = None,
    allow_single_confirmation: AllowSingle = False,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Add or remove index roots: the folders the service (`facefind serve`) may index it from;
    set the rule destroying photos after their last use, and the confirmations a match needs."""
    with session(db, actor) as ff:
        if confirmations is not None:
            updated = ff.set_confirmations(name, confirmations, allow_single=allow_single_confirmation)
        if destroy_after_last_use is not None:
            updated = ff.set_destroy_rule(name, destroy_after_last_use)
        if root or remove_root or (destroy_after_last_use is None and confirmations is None):
            updated = ff.update_collection(name, add_roots=root or [], remove_roots=remove_root or [])
    rule = updated.destroy_after_last_use_days
    after = f", destroyed {rule} days after last use" if rule else ""
    needs = f", {updated.confirmations} confirmation(s) per match" if confirmations is not None else ""
    reply(updated, as_json, f"collection {safe(updated.name)}: {_roots(updated.roots)}{after}{needs}")


def _roots(roots: list[str]) -> str:
    if not roots:
        return "no index roots (the service may not index it)"
    return "index roots " + ", ".join(safe(r) for r in roots)


@collection_app.command("list")
def collection_list(db: Db = None, as_json: Json = False) -> None:
    """Collections with owner, basis, retention and image count."""
    with session(db) as ff:
        found = ff.collections()
    reply(
        found,
        as_json,
        (
            f"{safe(c.name)}: owner {safe(c.owner or '-')}, "
            f"basis {c.basis or '[red]none (indexing refused)[/]'}, "
            f"retention {f'{c.retention_days} days' if c.retention_days else '-'}, {c.images} images, "
            f"{_roots(c.roots)}"
            for c in found
        ),
    )


# erasure ----------------------------------------------------------------------------------
erase_app = typer.Typer(help="Erase faces everywhere they are stored, with a receipt.", no_args_is_help=True)
app.add_typer(erase_app, name="erase")


Confirm = Annotated[
    bool,
    typer.Option("--confirm", help="Erase them: needed for a folder (or several photos) or a collection."),
]


def _erase(
    kind: str, target: str, actor: str | None, db: str | None, as_json: bool, confirm: bool = False
) -> None:
    with session(db, actor) as ff:
        receipt = ff.erase(kind, target, confirm=confirm)
    if as_json:
        emit_json(receipt)
        return
    out.print(
        f"erased {kind} {safe(target)}: {receipt.images_removed} photo(s), {receipt.faces_removed} face(s), "
        f"{receipt.persons_removed} person(s); {len(receipt.image_sha256)} photo hash(es) in the receipt "
        f"{receipt.receipt} (audit entry #{receipt.audit_seq}). Removed: {'; '.join(receipt.data_removed)}."
    )
    for line in receipt.pending:
        out.print(f"[bold yellow]{safe(line)}[/]")
    if receipt.copies_elsewhere:
        out.print("Copies facefind cannot reach, for you to clear:")
        for line in receipt.copies_elsewhere:
            out.print(f"  - {line}")


@erase_app.command("image")
def erase_image(
    path: Annotated[str, typer.Argument(help="A catalogued photo, or a folder: every photo under it.")],
    confirm: Confirm = False,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Erase a photo's record and faces, and every catalogued copy of it (the photo file itself is
    yours and is not touched). Indexing refuses the photo from now on, under any name."""
    _erase("image", path, actor, db, as_json, confirm)


@erase_app.command("person")
def erase_person(person: PersonId, actor: Actor = None, db: Db = None, as_json: Json = False) -> None:
    """Erase every face of a person, and the person."""
    _erase("person", str(person), actor, db, as_json)


@erase_app.command("collection")
def erase_collection(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    confirm: Confirm = False,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Erase a whole collection: its photos' records, faces and the collection (needs --confirm)."""
    _erase("collection", name, actor, db, as_json, confirm)


@erase_app.command("optout-matches")
def erase_optout_matches(
    optout: Annotated[int, typer.Argument(help="Opt-out id (see `facefind optout list`).")],
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Erase for good the faces an opt-out suppresses (the opt-out itself stays in force)."""
    _erase("optout-matches", str(optout), actor, db, as_json)


@erase_app.command("allow")
def erase_allow(
    photo: Annotated[str, typer.Argument(help="The photo's file, or its SHA-256 from the erasure receipt.")],
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Let indexing take an erased photo again (a DPO's decision; audited as erase.allow)."""
    with session(db, actor) as ff:
        allowed = ff.erase_allow(photo)
    reply(
        allowed,
        as_json,
        f"photo {allowed.sha256} (erased {allowed.erased_at[:10]}, receipt {allowed.receipt}) may be "
        f"indexed again (audit entry #{allowed.audit_seq}); index its folder to add it.",
    )


# opt-outs ---------------------------------------------------------------------------------
optout_app = typer.Typer(help="Opt-out by photo: leave a person out of everything.", no_args_is_help=True)
app.add_typer(optout_app, name="optout")


@optout_app.command("add")
def optout_add(
    photo: Annotated[
        Path, typer.Argument(help="A photo of the person (one face), e.g. sent with the request.")
    ],
    note: Annotated[str | None, typer.Option("--note", help="Reference, e.g. the request's number.")] = None,
    face: Annotated[int | None, typer.Option("--face", help="The face to use if there are several.")] = None,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Keep the face template (never the photo), suppress every matching face, refuse new ones."""
    with session(db, actor) as ff:
        added = ff.optout_add(photo, note=note, face=face)
    reply(
        added,
        as_json,
        f"opt-out {added.id} added: {added.faces_suppressed} stored face(s) suppressed; matching faces "
        f"will not be indexed. Only the face template was kept, not the photo.",
    )


@optout_app.command("list")
def optout_list(db: Db = None, as_json: Json = False) -> None:
    """Opt-outs in force, with how many stored faces each suppresses."""
    with session(db) as ff:
        found = ff.optouts()
    reply(
        found,
        as_json,
        (
            f"opt-out {o.id}: {o.faces_suppressed} face(s) suppressed; {safe(o.note or '')} "
            f"({o.created_at}, {safe(o.created_by)})"
            for o in found
        ),
    )


@optout_app.command("remove")
def optout_remove(
    optout: Annotated[int, typer.Argument(help="Opt-out id.")],
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Withdraw an opt-out: the template is deleted and the faces it suppressed show again."""
    with session(db, actor) as ff:
        removed = ff.optout_remove(optout)
    reply(removed, as_json, f"opt-out {removed.id} removed")


# consent ----------------------------------------------------------------------------------
consent_app = typer.Typer(help="Consent records of named persons.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")


@consent_app.command("add")
def consent_add(
    person: PersonId,
    given_by: Annotated[str, typer.Option("--by", help="Who consented (the person or their guardian).")],
    expires: Annotated[str, typer.Option("--expires", help="Last valid day, YYYY-MM-DD.")],
    evidence: Annotated[str, typer.Option("--evidence", help="Where the proof is kept (a reference).")],
    scope: Annotated[str, typer.Option("--scope", help="Any of search,results,clustering,publication.")] = (
        "search,results,clustering"
    ),
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Record a person's consent: needed to name them; its scope limits how their faces are used."""
    with session(db, actor) as ff:
        added = ff.consent_add(person, given_by=given_by, scope=scope, expires=expires, evidence=evidence)
    reply(
        added,
        as_json,
        f"consent {added.id} for person {added.person_id}: by {safe(added.given_by)}, "
        f"scope {','.join(added.scope)}, until {added.expires_on} (evidence {safe(added.evidence)})",
    )


@consent_app.command("withdraw")
def consent_withdraw(
    consent_id: Annotated[int, typer.Argument(help="Consent id (see `consent list`).")],
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Withdraw a consent: the person's faces leave searches and the people view at once."""
    with session(db, actor) as ff:
        withdrawn = ff.consent_withdraw(consent_id)
    reply(withdrawn, as_json, f"consent {withdrawn.id} withdrawn")


@consent_app.command("list")
def consent_list(
    person: Annotated[int | None, typer.Option("--person", help="Only this person's.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Consent records, active or not."""
    with session(db) as ff:
        found = ff.consents(person)
    reply(
        found,
        as_json,
        (
            f"consent {c.id}: person {c.person_id}, "
            f"{'active' if c.active else 'withdrawn' if c.withdrawn_at else 'expired'}, "
            f"by {safe(c.given_by)}, "
            f"scope {','.join(c.scope)}, until {c.expires_on}, evidence {safe(c.evidence)}"
            for c in found
        ),
    )


@app.command()
def purge(
    audit_older_than: Annotated[
        str | None,
        typer.Option(
            "--audit-older-than",
            help="Also delete audit entries older than this (2y, 18m; at least 183d: EU AI Act Art. 26(6)).",
        ),
    ] = None,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Retention: erase photos past their collection's retention and faces whose consent lapsed."""
    with session(db, actor) as ff:
        report = ff.purge(audit_older_than=audit_older_than)
    if as_json:
        emit_json(report)
        return
    for r in report.receipts:
        out.print(f"erased {r.kind} {safe(r.target)}: {r.images_removed} photo(s), {r.faces_removed} face(s)")
    if report.query_faces_deleted:
        out.print(f"{report.query_faces_deleted} query face(s) kept for confirmation deleted")
    if not report.receipts and not report.query_faces_deleted:
        out.print("nothing past its retention period")
    if report.audit_checkpoint_seq:
        out.print(f"old audit entries deleted; signed checkpoint #{report.audit_checkpoint_seq}")


Since = Annotated[str | None, typer.Option("--since", help="From this date or time (UTC, ISO 8601).")]
Until = Annotated[str | None, typer.Option("--until", help="Up to this date or time (UTC, ISO 8601).")]


@app.command("policy")
def retention_policy(
    fmt: Annotated[str, typer.Option("--format", help="markdown | html")] = "markdown",
    output: Annotated[Path | None, typer.Option("--out", help="Write it to this file.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """The public retention schedule and purposes of every collection (BIPA Sec. 15(a)): publish it."""
    from .accountability import schedule

    if fmt not in ("markdown", "html"):
        fail(f"--format {fmt!r}: give markdown or html")
    with session(db) as ff:
        data = ff.policy()
    if as_json:
        emit_json(data)
        return
    text = schedule.markdown(data) if fmt == "markdown" else schedule.to_html(data)
    if output:
        output.write_text(text, encoding="utf-8")
        out.print(
            f"retention schedule of {len(data.collections)} collection(s) written to {safe(str(output))}"
        )
    else:
        sys.stdout.write(text)


@app.command("report")
def transparency_report(
    since: Since = None,
    output: Annotated[Path | None, typer.Option("--output", "--out", help="Write the report here.")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Write a PNG of searches per day.")] = None,
    dpia: Annotated[
        bool,
        typer.Option(
            "--dpia",
            help="The impact-assessment pack instead: purposes, bases, volumes, accuracy at the "
            "operating point, oversight, and the questions only you can answer.",
        ),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="With --dpia: markdown | html | json.")] = "markdown",
    evaluation: Annotated[
        Path | None,
        typer.Option(
            "--evaluation", help="With --dpia: a `facefind evaluate LABELLED --json` result to include."
        ),
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Transparency report: searches per actor and purpose, hit rates, opt-outs, erasures, consents
    (--dpia: the impact-assessment pack)."""
    from .accountability import report as reporting

    if dpia:
        _dpia_report(fmt, output, evaluation, db, as_json)
        return
    with session(db) as ff:
        data = ff.report(since)
    if chart:
        reporting.chart(data, chart)
    text = reporting.markdown(data)
    if output:
        output.write_text(text)
    if as_json:
        emit_json(data)
    else:
        out.print(text, markup=False)


def _dpia_report(
    fmt: str, output: Path | None, evaluation: Path | None, db: str | None, as_json: bool
) -> None:
    from .accountability import dpia

    if fmt not in dpia.FORMATS:
        fail(f"--format {fmt!r}: give markdown, html or json")
    with session(db) as ff:
        try:
            given = dpia.read_evaluation(evaluation) if evaluation else None
        except FacefindError as e:
            failed(e)
        data = ff.dpia(given)
    if as_json or fmt == "json":
        text = as_json_text(data) + "\n"
    else:
        text = dpia.markdown(data) if fmt == "markdown" else dpia.to_html(data)
    if output:
        output.write_text(text, encoding="utf-8")
        out.print(f"impact-assessment pack ({fmt}) written to {safe(str(output))}")
    else:
        sys.stdout.write(text)


# audit ------------------------------------------------------------------------------------
audit_app = typer.Typer(help="The tamper-evident log of every search, verify, erasure and consent change.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="SEQ:HASH of a head exported earlier (`facefind audit head`): the log must still hold it.",
        ),
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Recompute the hash chain; name every edited, deleted or reordered entry, and check the newest
    against the head signed with the key file and --expect-head. Exit 1 if broken."""
    with session(db) as ff:
        result = ff.audit.verify(expect_head)
    if as_json:
        emit_json(result)
    elif result.ok:
        out.print(
            f"audit log intact: {result.entries} entries (#{result.first_seq}..#{result.last_seq}), "
            f"head {result.head_hash}",
            markup=False,
        )
        out.print(f"checked: {result.scope}", markup=False)
    else:
        out.print(
            f"[bold red]audit log BROKEN[/]: {len(result.problems)} problem(s) in {result.entries} entries"
        )
        for p in result.problems:
            out.print(f"  {f'entry #{p.seq}' if p.seq else 'the log'}: {p.problem}", markup=False)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("head")
def audit_head(db: Db = None, as_json: Json = False) -> None:
    """The newest entry signed with the audit key: export it (to the DPO, an authority); later
    `facefind audit verify --expect-head SEQ:HASH` shows the log still holds it unchanged."""
    with session(db) as ff:
        head = ff.audit.head()
    if as_json:
        emit_json(head)
        return
    out.print(f"head #{head.seq} {head.hash} at {head.at}", markup=False)
    out.print(f"signature {head.signature} (Ed25519, public key {head.public_key})", markup=False)
    out.print(f"later: facefind audit verify --expect-head {head.seq}:{head.hash}", markup=False)


@audit_app.command("show")
def audit_show(since: Since = None, until: Until = None, db: Db = None, as_json: Json = False) -> None:
    """Entries, oldest first: when, who, what, why, and how many results (long details cut; --json: whole)."""
    with session(db) as ff:
        entries = list(ff.audit.entries(since, until))
    if as_json:
        emit_json(entries)
        return
    for e in entries:
        summary = ", ".join(f"{k}={_detail(v)}" for k, v in e.details.items() if _detail(v) is not None)
        faces = e.details.get("faces")
        matches = ""
        if e.action == "search" and isinstance(faces, list):  # [{"face": n, "matches": [...]}, ...]
            matches = f" matches={sum(len(f.get('matches', [])) for f in faces if isinstance(f, dict))}"
        out.print(
            f"#{e.seq} {e.at} {safe(e.actor)} {e.action} purpose={safe(repr(e.purpose))} "
            f"{safe(summary)}{matches}"
        )


DETAIL_CHARS = 64  # a detail longer than this (a SHA-256 is not) is cut in `audit show` (--json: whole)


def _detail(value: Any) -> str | None:
    """A detail as text: scalars as they are, lists of scalars (face ids) joined, at most
    DETAIL_CHARS; None for nested ones."""
    if isinstance(value, dict):
        return None
    if isinstance(value, list):
        if any(isinstance(v, list | dict) for v in value):
            return None
        text = ",".join(map(str, value)) or "-"
    else:
        text = str(value)
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


@audit_app.command("export")
def audit_export(
    since: Since = None,
    until: Until = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv (with --out).")] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the entries with the chain proof (signed) to this file, for an authority; "
            "`facefind audit verify-export FILE` checks it offline.",
        ),
    ] = None,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Entries as JSON lines on stdout (one entry per line, with hashes, for archiving), or with
    --out a file with the chain proof; audited."""
    if output is not None:
        with session(db, actor) as ff:
            proof, _ = ff.export_audit(output, fmt=fmt, since=since, until=until)
        reply(
            proof,
            as_json,
            f"{proof.entries} entries (#{proof.first_seq}..#{proof.last_seq}) "
            f"written to {safe(str(output))}, "
            f"{'signed with key ' + proof.public_key if proof.public_key else 'not signed (no audit key)'}",
        )
        return
    if fmt != "jsonl":
        fail("--format csv needs --out FILE")
    with session(db, actor) as ff:
        entries = list(ff.audit.entries(since, until))
        for e in entries:
            sys.stdout.write(as_json_text(e, indent=None) + "\n")
        details = {"what": "audit log", "since": since, "until": until, "entries": len(entries)}
        ff.audit.record(ff.actor, "export", details)


@audit_app.command("verify-export")
def audit_verify_export(
    file: Annotated[Path, typer.Argument(help="An export made by `facefind audit export --out FILE`.")],
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", help="The operator's published audit key (`facefind audit head`)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Check an audit export offline, without the catalog: every entry's hash, the links between
    them and the signed statement of the range. Exit 1 if it does not verify."""
    from .accountability.audit_export import verify_export

    try:
        result = verify_export(file, public_key)
    except FacefindError as e:
        failed(e)
    if as_json:
        emit_json(result)
    elif result.ok:
        out.print(
            f"export intact: {result.entries} entries (#{result.first_seq}..#{result.last_seq})", markup=False
        )
        out.print(f"checked: {result.scope}", markup=False)
    else:
        out.print(
            f"[bold red]export BROKEN[/]: {len(result.problems)} problem(s) in {result.entries} entries"
        )
        for p in result.problems:
            out.print(f"  {f'entry #{p.seq}' if p.seq else 'the export'}: {p.problem}", markup=False)
    if not result.ok:
        raise typer.Exit(1)


# subject access ---------------------------------------------------------------------------
subject_app = typer.Typer(help="A person's own data, for their access request (GDPR Art. 15, 20).")
app.add_typer(subject_app, name="subject")


@subject_app.command("export")
def subject_export(
    output: Annotated[Path, typer.Option("--out", help="The zip to write (never over an existing file).")],
    person: Annotated[int | None, typer.Option("--person", help="The person's id.")] = None,
    photo: Annotated[
        Path | None,
        typer.Option("--photo", help="The subject's own photo: find them by an audited search."),
    ] = None,
    face: Annotated[
        int | None, typer.Option("--face", help="With --photo: the subject's face if it shows several.")
    ] = None,
    crops: Annotated[
        bool, typer.Option("--crops", help="Only crops of their faces, not their photos (others hidden).")
    ] = False,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Everything the catalog holds about one person, as a zip: their photos with every other face
    hidden, faces, person, consents, opt-outs, erasure receipts and the audit entries that found
    them (subject.json and a readable index.html). Audited."""
    with session(db, actor) as ff:
        done, _ = ff.subject_export(output, person=person, photo=photo, face=face, crops=crops)
    lines = [
        f"person(s) {', '.join(map(str, done.persons)) or '-'}: {done.faces} face(s), "
        f"{done.photos} photo(s){' as crops' if crops else ''}, {done.audit_entries} audit entries",
        f"written to {safe(str(output))} (sha256 {done.sha256}); audit entry #{done.audit_seq}",
        *(f"not exported (listed in subject.json): {safe(u)}" for u in done.unreadable),
    ]
    if done.matched:
        found = ", ".join(f"face {m.face_id} similarity {m.similarity:.3f}" for m in done.matched)
        lines.append(f"found by the photo's matches (check the requester is this person): {found}")
    reply(done, as_json, lines)


# the service ------------------------------------------------------------------------------
# two-person confirmation -----------------------------------------------------------------
review_app = typer.Typer(
    help="Confirm or reject the candidates of searches: a match is an identification only when "
    "enough distinct people confirmed it (EU AI Act Art. 14(5)).",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")
SearchSeq = Annotated[int, typer.Argument(help="The search's audit entry number (`review list` shows it).")]
CandidateFace = Annotated[
    str, typer.Argument(help="The candidate's face id, or its photo (if no other candidate is in it).")
]
Note = Annotated[str, typer.Option("--note", help="What you compared and why you decided (audited).")]


def _candidate_line(c: Candidate) -> str:
    where = f" {safe(c.path)}" if c.path else ""
    by = f" by {', '.join(map(safe, c.confirmed_by))}" if c.confirmed_by else ""
    state = {
        "awaiting": f"{len(c.confirmed_by)} of {c.required} confirmed{by}",
        "identified": f"[green]identified[/]: confirmed{by}",
        "rejected": f"[red]rejected[/] by {', '.join(map(safe, c.rejected_by))}",
    }[c.state]
    return f"#{c.search_seq} face {c.face_id}: similarity {c.similarity:.3f},{where}; {state}"


@review_app.command("list")
def review_list(
    limit: Annotated[int, typer.Option("--limit", help="At most this many candidates (1..10000).")] = 50,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Candidates awaiting confirmation, newest search first (audited as a view)."""
    with session(db, actor) as ff:
        found = ff.confirmations.pending(limit)
    lines = [_candidate_line(c) for c in found]
    hint = "confirm: facefind review confirm SEQ FACE --note TEXT; details: facefind review show SEQ"
    reply(found, as_json, [*lines, hint] if lines else ["no candidate awaits confirmation"])


@review_app.command("show")
def review_show(search: SearchSeq, actor: Actor = None, db: Db = None, as_json: Json = False) -> None:
    """A search's candidates, every confirmation and rejection with its note, and its verifiers."""
    with session(db, actor) as ff:
        review = ff.confirmations.status(search)
    if as_json:
        emit_json(review)
        return
    out.print(
        f"search #{review.search_seq} by {safe(review.searcher)} at {review.searched_at}, "
        f"purpose {safe(repr(review.purpose))}"
    )
    for c in review.candidates:
        out.print(_candidate_line(c))
        for d in c.decisions:
            who = f"{safe(d.person)} ({safe(d.actor)}, entry #{d.audit_seq})"
            out.print(f"  {d.at} {d.decision} by {who}: {safe(d.note)}")
    verifiers = ", ".join(map(safe, review.verifiers)) or "none yet"
    identified = ", ".join(map(str, review.identified)) or "none"
    out.print(f"verifiers: {verifiers}; identified faces: {identified}")


def _face(ff: FaceFind, search: int, face: str) -> int:
    """A face id as given, or the candidate face of the search in the photo given."""
    return int(face) if face.strip().isdigit() else ff.confirmations.face_in(search, face)


def _decided(c: Candidate, as_json: bool) -> None:
    reply(c, as_json, _candidate_line(c))


@review_app.command("confirm")
def review_confirm(
    search: SearchSeq,
    face: CandidateFace,
    note: Note,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Confirm a candidate shows the person searched for; it is an identification once as many
    distinct people as its collection requires confirmed it."""
    with session(db, actor) as ff:
        _decided(ff.confirmations.confirm(search, _face(ff, search, face), note=note), as_json)


@review_app.command("reject")
def review_reject(
    search: SearchSeq,
    face: CandidateFace,
    note: Note,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Reject a candidate: it is not the person searched for, and cannot become an identification."""
    with session(db, actor) as ff:
        _decided(ff.confirmations.reject(search, _face(ff, search, face), note=note), as_json)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback unless you say otherwise).")] = (
        "127.0.0.1"
    ),
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            envvar="FACEFIND_ALLOWED_HOSTS",
            help="Another name clients reach the server by (repeat for several); any other Host is "
            "refused. 127.0.0.1, localhost, ::1 and --host are always allowed.",
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (each loads the model and index).")] = 1,
    rate_limit: Annotated[
        int, typer.Option("--rate-limit", help="Requests a minute per key and worker (0: no limit).")
    ] = 600,
    max_jobs: Annotated[
        int, typer.Option("--max-jobs", envvar="FACEFIND_MAX_JOBS", help="Index jobs running at once.")
    ] = 1,
    max_jobs_per_key: Annotated[
        int,
        typer.Option(
            "--max-jobs-per-key",
            envvar="FACEFIND_MAX_JOBS_PER_KEY",
            help="Index jobs running at once per key.",
        ),
    ] = 1,
    max_queued_per_key: Annotated[
        int,
        typer.Option(
            "--max-queued-per-key",
            envvar="FACEFIND_MAX_QUEUED_PER_KEY",
            help="Index jobs a key may have waiting; more get 429.",
        ),
    ] = 10,
    db: Db = None,
) -> None:
    """The REST API (FastAPI): every request needs a key (`facefind keys add`); docs at /docs."""
    import uvicorn

    with session(db) as ff:  # migrate, and fail here rather than in every worker
        limits.WORKERS.check(workers)
        limits.RATE_LIMIT.check(rate_limit)
        os.environ["FACEFIND_RATE_LIMIT"] = str(rate_limit)
        # Index jobs queue beyond these (api/jobs.py); every server process reads them.
        os.environ["FACEFIND_MAX_JOBS"] = str(limits.MAX_JOBS.check(max_jobs))
        os.environ["FACEFIND_MAX_JOBS_PER_KEY"] = str(limits.MAX_JOBS_PER_KEY.check(max_jobs_per_key))
        os.environ["FACEFIND_MAX_QUEUED_PER_KEY"] = str(limits.MAX_QUEUED_PER_KEY.check(max_queued_per_key))
        if not ff.keys():
            err.print("[yellow]note:[/] no keys yet: `facefind keys add NAME --role ROLE` makes one")
        os.environ["FACEFIND_DB"] = str(ff.db)
    err.print(f"facefind serving {safe(ff.db)} at http://{host}:{port} (API docs: /docs)")
    # The guard (api/guard.py) refuses any other Host header: DNS rebinding.
    os.environ["FACEFIND_ALLOWED_HOSTS"] = " ".join([host, *(allowed_host or [])])
    if host in ("0.0.0.0", "::") and not allowed_host:
        err.print(
            "[yellow]note:[/] clients must reach it as 127.0.0.1 or localhost, or by a name you give "
            "with --allowed-host"
        )
    uvicorn.run(
        "facefind.api:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http="facefind.api.guard:TimedH11Protocol",  # a deadline for each request's head
        ws="none",
        proxy_headers=False,  # the client is the socket's peer, never X-Forwarded-For
        timeout_keep_alive=5,  # an idle connection between requests
        h11_max_incomplete_event_size=16 * 1024,  # a request line and headers: 400 beyond
        limit_concurrency=512,  # connections and requests a worker holds at once; 503 beyond
    )


pg_app = typer.Typer(
    help="An embedded PostgreSQL (with pgvector) for trying server mode: `pip install 'facefind[server]'`.",
    no_args_is_help=True,
)
app.add_typer(pg_app, name="pg")


@pg_app.command("start")
def pg_start(
    folder: Annotated[
        Path, typer.Argument(help="Its data folder (made if new); as root, owned by `pgserver`.")
    ],
    allow_open_parents: Annotated[
        bool,
        typer.Option(
            "--allow-open-parents",
            help=(
                "As root, PostgreSQL runs as the user `pgserver`, which must enter the folders above "
                "FOLDER: let it make them readable by every user (refused otherwise; it says which)."
            ),
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Start PostgreSQL on the data in FOLDER (or find it running) and print the catalog's URL."""
    try:
        started = embedded.start(folder, allow_open_parents=allow_open_parents)
    except FacefindError as e:
        failed(e)
    if started.opened:
        err.print(
            "[yellow]note:[/] made readable by every user, for `pgserver`: "
            + escape(", ".join(shown(str(o)) for o in started.opened)),
            highlight=False,
        )
    url = started.url
    reply(
        {"url": url, "folder": str(folder), "opened": [str(o.path) for o in started.opened]},
        as_json,
        [url, f"use it: export FACEFIND_DB='{url}'"],
    )


@pg_app.command("stop")
def pg_stop(
    folder: Annotated[Path, typer.Argument(help="The data folder given to `pg start`.")],
    as_json: Json = False,
) -> None:
    """Stop the PostgreSQL of FOLDER (its data stays)."""
    try:
        stopped = embedded.stop(folder)
    except FacefindError as e:
        failed(e)
    reply(
        {"stopped": stopped, "folder": str(folder)},
        as_json,
        "stopped" if stopped else f"no PostgreSQL was running on {safe(folder)}",
    )


keys_app = typer.Typer(help="Keys of the service, each with a role.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who or what uses the key; the audit log's actor.")],
    role: Annotated[str, typer.Option(help="admin, operator, reviewer, dpo, auditor or publisher.")],
    collection: Annotated[
        list[str] | None,
        typer.Option(
            "--collection", help="Limit an operator or publisher key to this collection (repeat for several)."
        ),
    ] = None,
    person: Annotated[
        str | None,
        typer.Option(
            "--person",
            help="Whose key it is (default: its name): confirmations of a match count people, so two "
            "keys of one person count once.",
        ),
    ] = None,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Make a key and print it, once (only its hash is kept)."""
    with session(db, actor) as ff:
        added = ff.keys_add(name, role, collection or None, person=person)
    limited = f", only {', '.join(map(safe, added.collections))}" if added.collections else ""
    reply(
        added,
        as_json,
        [f"key for {safe(added.name)} ({added.role}{limited}); shown only now, keep it safe:", added.key],
    )


@keys_app.command("list")
def keys_list(db: Db = None, as_json: Json = False) -> None:
    """Every key: name, role, made when and by whom, revoked or not (never the key)."""
    with session(db) as ff:
        found = ff.keys()
    reply(
        found,
        as_json,
        [
            f"{safe(k.name)}: {k.role}"
            + (f" (only {', '.join(map(safe, k.collections))})" if k.collections else "")
            + (f", person {safe(k.person)}" if k.person else "")
            + f", made {k.created_at} by {safe(k.created_by)}"
            + (f", [red]revoked {k.revoked_at}[/]" if k.revoked_at else "")
            for k in found
        ]
        or ["no keys"],
    )


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Stop a key working, from the next request on."""
    with session(db, actor) as ff:
        revoked = ff.keys_revoke(name)
    reply(revoked, as_json, f"revoked the key of {safe(revoked.name)}")


# recognizers ------------------------------------------------------------------------------
models_app = typer.Typer(
    help="Recognizers: the built-in SFace and ONNX models you register; which one is in use.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
ModelName = Annotated[str, typer.Argument(help="Recognizer name (see `facefind models list`).")]


@models_app.command("add")
def models_add(
    file: Annotated[Path, typer.Argument(help="The recognizer's .onnx file (stays where it is).")],
    name: Annotated[str, typer.Option("--name", help="Short id: a-z, 0-9, '.', '_', '-'.")],
    sha256: Annotated[str, typer.Option("--sha256", help="The file's published SHA-256; checked.")],
    input_size: Annotated[int, typer.Option("--input", help="Input side in pixels (NxN).")] = 112,
    color: Annotated[str, typer.Option("--color", help="Channel order the model takes: rgb or bgr.")] = "rgb",
    mean: Annotated[float, typer.Option("--mean", help="Subtracted from each 0..255 pixel value.")] = 127.5,
    std: Annotated[float, typer.Option("--std", help="Then divided by this.")] = 127.5,
    actor: Actor = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Register your own ONNX recognizer, checked first (defaults: ArcFace-style RGB, (x-127.5)/127.5)."""
    with session(db, actor) as ff:
        added = ff.models.add(
            file, name=name, sha256=sha256, input_size=input_size, color=color, mean=mean, std=std
        )
    reply(
        added,
        as_json,
        [
            f"registered {added.name}: {safe(added.path)}, {added.dim}-d embeddings from "
            f"{added.input_size}x{added.input_size} {added.color.upper()} input, "
            f"(x - {added.mean:g}) / {added.std:g}",
            f"next: `facefind calibrate LABELLED_DIR --model {added.name}`, "
            f"then `facefind models use {added.name}`",
        ],
    )


@models_app.command("list")
def models_list(db: Db = None, as_json: Json = False) -> None:
    """Recognizers: which one is in use, calibrated or not, faces embedded with each."""
    with session(db) as ff:
        found = ff.models.all()
    reply(
        found,
        as_json,
        (
            f"{'*' if r.active else ' '} {r.name}: {r.dim}-d, "
            f"{'built in' if r.builtin else safe(r.path)}, calibration "
            f"{r.calibration or '[red]none (run `facefind calibrate DIR --model ' + r.name + '`)[/]'}, "
            f"{r.faces} face(s) embedded"
            for r in found
        ),
    )


@models_app.command("use")
def models_use(name: ModelName, actor: Actor = None, db: Db = None, as_json: Json = False) -> None:
    """Switch to recognizer NAME: every stored face is re-embedded from its photo (resumable)."""
    with session(db, actor) as ff, progress_bar(f"re-embedding with {name}", as_json) as on_progress:
        result = ff.models.use(name, on_progress=on_progress)
    if as_json:
        emit_json(result)
    else:
        if result.switched:
            out.print(
                f"now using {result.model} (was {result.previous}): {result.embedded} face(s) embedded in "
                f"{result.seconds:.1f}s ({result.faces_per_second:.1f}/s); {result.faces_with_model} of "
                f"{result.faces} stored faces searchable with it"
            )
        for e in result.errors[:20]:
            out.print(f"  not re-embedded: {safe(e.path)}: {safe(e.error)}")
        if len(result.errors) > 20:
            out.print(f"  ... and {len(result.errors) - 20} more (`--json` lists them all)")
        if result.interrupted:
            out.print(
                f"[yellow]interrupted[/]: still using {result.previous}; the {result.embedded} face(s) "
                f"embedded are kept: run the same command again to continue."
            )
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.errors:
        raise typer.Exit(EXIT_COMPLETED_WITH_ERRORS)


@models_app.command("remove")
def models_remove(name: ModelName, actor: Actor = None, db: Db = None, as_json: Json = False) -> None:
    """Forget a registered recognizer and erase every embedding and calibration it left."""
    with session(db, actor) as ff:
        gone = ff.models.remove(name)
    reply(
        gone,
        as_json,
        f"removed {gone.name} and its {gone.faces} stored embedding(s); the file itself is untouched",
    )
