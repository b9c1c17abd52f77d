"""Every command of the README runs as written and gives the output the README shows.

The README's console blocks (``` fences holding `$ COMMAND` lines, each followed by the output it
printed) are run in order, in one temporary folder with `shared` linked to ../shared (conftest's
SHARED), so that they build and use one temporary catalog (`--db photos.db`) as a reader's first
session does. `facefind` and `python` on the PATH are this checkout's (the interpreter running the
tests, with `src` first on PYTHONPATH); a command runs through `bash -c`, so its quoting, `2>/dev/null`
and `| head` work as in a terminal.

Each command must exit as its shown output implies: non-zero where the README shows a line starting
`error:` or an audit log `BROKEN`, 3 where `index` says `completed with N error(s)`, 0 otherwise. The
first and last line of the shown output (and every `error:` line) must appear in what the command
printed (stdout and stderr; a printed line may say more), after masking what changes from run to
run (times, dates, hashes, keys, the temporary folder, where ../shared is) and allowing small
changes of wording (a line matches when it is at least 80% similar to one printed), so that
rewording a CLI message does not make this test a chore. The Python block is saved as a script
and run as such, which proves it works outside an interactive session (its main guard), and so is
the example in the package docstring.

Skipped, and only these: a block whose fence is preceded by `<!-- test_readme: skip: REASON -->`
(the server, PostgreSQL and long runs; the reason is shown as the skip reason). The install block has
no `$` prompts: `make install` and `make test` are what CI runs. What runs was chosen to fit in about
35 s of CPU on 2 cores (90 s of wall time on a machine shared with other jobs): one index of the 23
face_recognition photos, ~30 short commands and two small scripts; the 50-second evaluate of
glint_dev12 is marked as a long run (tests/test_evaluate.py covers evaluate).

When a command's output changes, update the README from a real run: FACEFIND_README_UPDATE=1 makes
this module, once every command has run, replace each shown output in README.md with what the
command printed (stdout, then stderr without progress lines); review the diff and commit it.
FACEFIND_README_RECORD=FILE writes the same as JSON instead.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import ROOT, SHARED

README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*test_readme:\s*skip:\s*(.+?)\s*-->")
SIMILAR = 0.8  # how alike a shown line and a printed one must be (1.0: identical after masking)


@dataclass
class Step:
    command: str
    shown: list[str]
    line: int  # in the README, for messages
    skip: str | None = None


@dataclass
class Readme:
    steps: list[Step] = field(default_factory=list)
    python: list[str] = field(default_factory=list)  # the Python blocks


def parse(text: str) -> Readme:
    """The README's fenced blocks: `$ ` commands with their shown output, and Python blocks."""
    found = Readme()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if not fence.startswith("```"):
            i += 1
            continue
        lang = fence[3:].strip()
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        before = [s for s in lines[max(0, start - 3) : start] if s.strip()]
        skip = next((m.group(1) for s in before if (m := SKIP.search(s))), None)
        if lang == "python":
            found.python.append("\n".join(body) + "\n")
            continue
        for k, text_line in enumerate(body):
            if text_line.startswith("$ "):
                shown: list[str] = []
                for nxt in body[k + 1 :]:
                    if nxt.startswith("$ "):
                        break
                    shown.append(nxt)
                while shown and not shown[-1].strip():
                    shown.pop()
                found.steps.append(Step(text_line[2:], shown, start + 2 + k, skip))
    return found


STEPS = parse(README.read_text()).steps


def expected_exit(shown: list[str]) -> int | str:
    """The exit status the shown output implies."""
    if any(s.startswith("error:") or "audit log BROKEN" in s for s in shown):
        return "non-zero"
    if any(re.match(r"completed with \d+ error", s) for s in shown):
        return 3
    return 0


def masker(tmp: Path):  # type: ignore[no-untyped-def]
    shared = [str(SHARED), "/work/shared"]

    def mask(text: str) -> str:
        for s in shared:
            text = text.replace(s, "<shared>")
        text = text.replace(str(tmp), "<tmp>")
        text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?", "<time>", text)
        text = re.sub(r"\b\d{4}-\d\d-\d\d\b", "<date>", text)
        text = re.sub(r"\b[0-9a-f]{16,}\b", "<hex>", text)
        text = re.sub(r"\bff_[A-Za-z0-9_-]{16,}", "<key>", text)
        text = re.sub(r"\b\d+(\.\d+)?s\b", "<secs>", text)  # durations: "in 2.2s"
        text = re.sub(r"\b\d+(\.\d+)?( images)?/s\b", "<rate>", text)
        return text.rstrip()

    return mask


class Session:
    """Runs the README's commands in order, once, in one folder; remembers what each printed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "shared").symlink_to(SHARED)
        bin_dir = folder.parent / "bin"
        bin_dir.mkdir()
        (bin_dir / "facefind").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m facefind "$@"\n')
        (bin_dir / "facefind").chmod(0o755)
        (bin_dir / "python").symlink_to(sys.executable)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
        }
        self.env.pop("FACEFIND_DB", None)
        self.done: dict[int, subprocess.CompletedProcess[str]] = {}
        self.mask = masker(folder)

    def run(self, index: int) -> subprocess.CompletedProcess[str]:
        for k in range(len(self.done), index + 1):  # earlier commands first, in README order
            if k in self.done:
                continue
            step = STEPS[k]
            if step.skip:
                self.done[k] = subprocess.CompletedProcess(step.command, 0, "", "")
                continue
            self.done[k] = subprocess.run(
                ["bash", "-c", step.command],
                cwd=self.folder,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=300,
            )
        return self.done[index]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("readme") / "checkout"
    folder.mkdir()
    s = Session(folder)
    yield s
    if os.environ.get("FACEFIND_README_UPDATE"):
        update_readme(s.done)
    record = os.environ.get("FACEFIND_README_RECORD")
    if record:
        out = [
            {
                "line": STEPS[k].line,
                "command": STEPS[k].command,
                "exit": p.returncode,
                "stdout": p.stdout,
                "stderr": p.stderr,
            }
            for k, p in sorted(s.done.items())
        ]
        Path(record).write_text(json.dumps(out, indent=1))


PROGRESS = re.compile(r"^[\w ]+: \d+/\d+ \(")  # "indexing: 10/23 (3.4/s, ETA 4s)" on stderr


def update_readme(done: dict[int, subprocess.CompletedProcess[str]]) -> None:
    """Replace each run command's shown output in README.md with what it printed."""
    lines = README.read_text().split("\n")
    for k in sorted(done, key=lambda k: -STEPS[k].line):  # bottom up: line numbers stay valid
        step, proc = STEPS[k], done[k]
        if step.skip:
            continue
        at = step.line - 1
        assert lines[at] == f"$ {step.command}", f"README changed during the run (line {step.line})"
        end = at + 1
        while end < len(lines) and not lines[end].startswith("$ ") and lines[end].strip() != "```":
            end += 1
        while end > at + 1 and not lines[end - 1].strip():
            end -= 1
        err = [x for x in proc.stderr.splitlines() if x.strip() and not PROGRESS.match(x)]
        lines[at + 1 : end] = [x.rstrip() for x in proc.stdout.rstrip("\n").splitlines()] + err
    README.write_text("\n".join(lines))


def best_match(want: str, printed: list[str]) -> tuple[float, str]:
    for p in printed:
        if want in p:  # the shown line, whole (a printed line may say more)
            return 1.0, p
    scored = [(difflib.SequenceMatcher(None, want, p).ratio(), p) for p in printed]
    return max(scored, default=(0.0, ""))


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[f"L{s.line}:{s.command[:60]}" for s in STEPS])
def test_readme_command(session: Session, index: int) -> None:
    step = STEPS[index]
    if step.skip:
        pytest.skip(f"README line {step.line}: {step.skip}")
    proc = session.run(index)
    where = f"README line {step.line}: $ {step.command}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    want = expected_exit(step.shown)
    if want == "non-zero":
        assert proc.returncode != 0, where
    else:
        assert proc.returncode == want, where
    printed = [session.mask(s) for s in (proc.stdout + "\n" + proc.stderr).splitlines() if s.strip()]
    shown = [s for s in step.shown if s.strip()]
    key_lines = ([shown[0], shown[-1]] if shown else []) + [s for s in shown if s.startswith("error:")]
    for line in dict.fromkeys(key_lines):
        score, closest = best_match(session.mask(line), printed)
        assert score >= SIMILAR, f"not printed:\n  {line}\nclosest ({score:.2f}):\n  {closest}\n{where}"


def run_script(session: Session, name: str, code: str) -> subprocess.CompletedProcess[str]:
    """`code` run as a plain script `name` in the session's folder, as a user would run it."""
    (session.folder / name).write_text(code)
    where = {"cwd": session.folder, "env": session.env}
    return subprocess.run([sys.executable, name], **where, capture_output=True, text=True, timeout=300)


def test_readme_python_blocks(session: Session) -> None:
    """Each Python block runs as a plain script (its main guard lets indexing spawn workers)."""
    blocks = parse(README.read_text()).python
    assert blocks, "the README shows how to use the library"
    for n, code in enumerate(blocks):
        proc = run_script(session, f"readme_{n}.py", code)
        assert proc.returncode == 0, f"readme_{n}.py:\n{code}\n{proc.stdout}\n{proc.stderr}"


def test_readme_parse_finds_the_session() -> None:
    """The test really reads the README: its first session is there and every skip says why."""
    commands = [s.command for s in STEPS]
    assert any(c.startswith("facefind collection create") for c in commands)
    assert any(c.startswith("facefind search") for c in commands)
    assert all(s.skip is None or len(s.skip) > 10 for s in STEPS)
    assert sum(s.skip is None for s in STEPS) >= 20


def test_package_docstring_example(session: Session) -> None:
    """The example in `help(facefind)` runs as written, with its photos pointed at ../shared."""
    import facefind

    doc = facefind.__doc__ or ""
    code = textwrap.dedent(doc.split("::\n", 1)[1].split("\n\n    if __name__", 1)[0] + "\n")
    code += '\n\nif __name__ == "__main__":\n    main()\n'
    assert "create_collection" in code and "purpose=" in code and "collection=" in code
    # the Python block's catalog (same collection and photos): the photos are indexed already
    for given, here in [
        ('"photos.db"', '"album.db"'),
        ('"~/Pictures"', '"shared/datasets/face_recognition"'),
        ('"me.jpg"', '"shared/datasets/face_recognition/Barack_Obama/obama.jpg"'),
    ]:
        code = code.replace(given, here)
    proc = run_script(session, "docstring_example.py", code)
    assert proc.returncode == 0, f"{code}\n{proc.stdout}\n{proc.stderr}"
    assert "obama" in proc.stdout, proc.stdout
