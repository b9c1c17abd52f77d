"""Issue 21's CLI papercuts, through the CLI: help that reads, --version, person ids in search
results, errors as JSON with --json, and opt-out refusals counted in `index`'s summary."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import GLINT, OBAMA, new_catalog, run_cli, run_json

WIDE = {**os.environ, "COLUMNS": "250"}  # one help row per line: nothing wrapped

# Renders `--help` of every command and group through facefind's own entry point (`cli.main`), in
# one subprocess, with every help string given in the code (to find what Rich markup would eat).
HELP_OF_EVERY_COMMAND = r"""
import contextlib, io, json, sys
import typer
from facefind import cli

def walk(cmd, path):
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from walk(sub, [*path, name])

for path, cmd in walk(typer.main.get_command(cli.app), []):
    given = [cmd.help or ""] + [p.help or "" for p in cmd.params if getattr(p, "help", None)]
    sys.argv = ["facefind", *path, "--help"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            cli.main()
        except SystemExit:
            pass
    print(json.dumps({"path": path, "given": given, "help": buf.getvalue()}))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, dict]:
    proc = subprocess.run(
        [sys.executable, "-c", HELP_OF_EVERY_COMMAND], capture_output=True, text=True, env=WIDE, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    found = {" ".join(d["path"]): d for d in map(json.loads, proc.stdout.splitlines())}
    assert {"", "search", "index", "pg", "pg start", "keys add"} <= set(found)
    return found


def flat(text: str) -> str:
    """Help text without Rich's boxes and line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_help_shows_no_type_noise_and_a_name_for_each_value(helps: dict[str, dict]) -> None:
    for name, h in helps.items():
        noise = re.findall(r"<[a-z][\w\[\]|, ]*>", h["help"])
        assert not noise, f"`facefind {name} --help` shows {noise}"
    search = flat(helps["search"]["help"])
    # A flag takes no value: nothing between it and its help.
    assert "--json Print one JSON document" in search
    assert "--include-low-quality Also match" in search
    assert "--help Show this message" in search
    # A value is named for what it is.
    assert re.search(r"--top-k N Most matches", search)
    assert re.search(r"--purpose TEXT Why", search)
    assert re.search(r"--db FILE\|URL Catalog", search)
    assert re.search(r"--collection NAME Search only", search)
    assert re.search(r"QUERY Photo of the face", search)


def test_help_shows_square_brackets_as_written(helps: dict[str, dict]) -> None:
    assert "pip install 'facefind[server]'" in flat(helps["pg"]["help"])
    for name, h in helps.items():
        shown = flat(h["help"])
        for given in h["given"]:
            for bracketed in re.findall(r"\[[^\]]*\]", given):
                if bracketed.startswith(("[/", "[bold", "[dim", "[red", "[green", "[yellow")):
                    continue
                assert " ".join(bracketed.split()) in shown, f"`facefind {name} --help` lost {bracketed}"


def test_version_from_the_package_metadata() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"facefind {importlib.metadata.version('facefind')}"


def test_search_shows_each_matchs_person(fr_copy: Path) -> None:
    result = run_json("search", OBAMA, "--purpose", "test", db=fr_copy)
    top = result["faces"][0]["matches"][0]
    assert top["person_id"] is not None
    person = str(top["person_id"])
    consent = ("--by", "him", "--expires", "2099-12-31", "--evidence", "form 1")
    run_cli("consent", "add", person, *consent, db=fr_copy, check=True)
    run_cli("people", "name", person, "Barack Obama", db=fr_copy, check=True)
    human = run_cli("search", OBAMA, "--purpose", "test", db=fr_copy, check=True).stdout
    assert f"person {top['person_id']} (Barack Obama)" in human


def test_json_errors_are_a_json_object_on_stdout(tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "catalog.db")
    cases = [
        ("verify", tmp_path / "nope.jpg", OBAMA),  # an error of facefind's (ImageError)
        ("search", OBAMA, "--top-k", "0", "--purpose", "test"),  # a value out of range
        ("search", "--purpose", "test"),  # neither a photo nor --person
        ("search", OBAMA, "--top-k", "many"),  # a value the parser refuses
        ("stats", "--no-such-option"),  # an option that does not exist
    ]
    for args in cases:
        plain = run_cli(*args, db=db)
        as_json = run_cli(*args, "--json", db=db)
        assert plain.returncode != 0 and as_json.returncode == plain.returncode, (args, as_json)
        error = json.loads(as_json.stdout)["error"]  # the whole of stdout is the one document
        assert set(error) == {"type", "message"} and error["type"] and error["message"], args
        assert "Traceback" not in as_json.stderr
    refused = json.loads(run_cli("verify", tmp_path / "nope.jpg", OBAMA, "--json", db=db).stdout)
    assert refused["error"]["type"] == "ImageError" and "nope.jpg" in refused["error"]["message"]
    # --json's help says so.
    helped = " ".join(run_cli("stats", "--help", env=WIDE).stdout.split())
    assert '{"error": {"type", "message"}}' in helped


def test_index_counts_faces_an_optout_refused(tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "catalog.db")
    photo = sorted((GLINT / "Tina_Fey").iterdir())[0]
    run_cli("optout", "add", photo, "--note", "test", db=db, check=True)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo, photos / photo.name)
    human = run_cli("index", photos, db=db, check=True).stdout
    assert "0 faces found" not in human
    assert re.search(r"\b1 faces? found, 1 refused by opt-outs", human), human
