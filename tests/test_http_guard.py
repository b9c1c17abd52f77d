"""The door of `facefind serve` (api/guard.py), tried as an attacker would over raw sockets.

One real server for the module, with a TMPDIR of its own. Bodies are refused before they are
read (no key: 401 after the head; too large: 413 once the cap is crossed, whatever Content-Length
says); a body or head that stalls is cut off; failed sign-ins are throttled per client address
and audited in aggregate; the web UI's session cookie is a server-side session, never the key.
"""

from __future__ import annotations

import os
import select
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from facefind.policy import Role

from .browser import launch, require_chromium
from .conftest import OBAMA
from .server import NAMES, Server, serve_copy

MiB = 2**20
BIG = 200 * MiB
PHOTO_LIMIT = 32 * MiB  # app.MAX_UPLOAD_BYTES: one photo


@dataclass
class Guarded:
    server: Server
    tmp: Path  # the server's TMPDIR

    @property
    def port(self) -> int:
        return int(urlsplit(self.server.url).port or 0)

    def worker(self) -> int:
        return int(httpx.get(f"{self.server.url}/healthz").headers["x-facefind-worker"])


@pytest.fixture(scope="module")
def guarded(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    folder = tmp_path_factory.mktemp("guard")
    tmp = folder / "tmp"
    tmp.mkdir()
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)  # the server inherits it; restored once it runs
    try:
        with serve_copy(fr_db, folder, workers=1) as server:
            _restore(before)
            yield Guarded(server, tmp)
    finally:
        _restore(before)


def _restore(before: str | None) -> None:
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before


def client_at(server: Server, address: str, key: str | None = None) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 reaches the server)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, headers=headers, transport=transport, timeout=60)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_temp_files(pid: int, tmp: Path) -> list[str]:
    """Files the server holds open in its TMPDIR (deleted ones too: they still fill the disk)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(tmp)):
            found.append(target)
    return found


@dataclass
class Sent:
    status: int
    sent: int  # body bytes the client got out before the server answered or hung up
    head: str
    temp_files: int  # the most temporary files the server held open meanwhile


def stream(
    g: Guarded, path: str, total: int, key: str | None = None, prefix: bytes = b"", headers: str = ""
) -> Sent:
    """POST `prefix` + zeros, `total` bytes in all, chunked, stopping as soon as the server answers."""
    pid = g.worker()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{g.port}\r\n{auth}{headers}"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", g.port), timeout=60)
    sent, most_files, chunk = 0, 0, bytes(MiB)
    try:
        sock.sendall(head.encode())
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or hung up)
            data = prefix if sent == 0 and prefix else chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            sent += len(data)
            if sent % (8 * MiB) < len(data):
                most_files = max(most_files, len(open_temp_files(pid, g.tmp)))
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        answer = read_all(sock)
    finally:
        sock.close()
    first = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    status = int(first.split()[1]) if first.startswith("HTTP/1.1 ") else 0
    return Sent(status, sent, answer.decode(errors="replace"), most_files)


def read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (or a reset cuts it short)."""
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


def raw(g: Guarded, head: str) -> bytes:
    with socket.create_connection(("127.0.0.1", g.port), timeout=60) as sock:
        sock.sendall(head.encode())
        return read_all(sock)


def multipart_head(boundary: str = "b0undary") -> tuple[bytes, str]:
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nguard test\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    return part.encode(), f"Content-Type: multipart/form-data; boundary={boundary}\r\n"


def test_the_client_address_is_the_sockets_never_x_forwarded_for(guarded: Guarded) -> None:
    server = guarded.server
    with server.client(key="ff_wrong-first") as stranger:
        refused = stranger.get("/v1/whoami", headers={"X-Forwarded-For": "203.0.113.9"})
    assert refused.status_code == 401
    with server.client(Role.auditor) as auditor:
        failed = auditor.get("/v1/audit", params={"action": "authenticate"}).json()
    assert failed and failed[-1]["details"]["client"] == "127.0.0.1", failed[-1]
    assert all("203.0.113.9" not in str(e["details"]) for e in failed)


def test_a_keyless_chunked_body_is_refused_before_it_is_read(guarded: Guarded) -> None:
    pid = guarded.worker()
    before = rss_kib(pid)
    json_route = stream(guarded, "/v1/keys", BIG, headers="Content-Type: application/json\r\n")
    assert json_route.status == 401, json_route.head
    assert json_route.sent < 48 * MiB, json_route.sent  # the kernel's buffers, not the body
    prefix, content_type = multipart_head()
    search = stream(guarded, "/v1/search", BIG, prefix=prefix, headers=content_type)
    assert search.status == 401, search.head
    assert search.sent < 48 * MiB and search.temp_files == 0, (search.sent, search.temp_files)
    assert rss_kib(pid) - before < 64 * 1024, (before, rss_kib(pid))  # KiB: tens of MB at most
    assert open_temp_files(pid, guarded.tmp) == [] and list(guarded.tmp.iterdir()) == []
    # A Content-Length that announces 300 MiB gets the same answer, and none of it is waited for.
    announced = raw(
        guarded, f"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {300 * MiB}\r\n\r\n"
    )
    assert announced.startswith(b"HTTP/1.1 401") and b"connection: close" in announced, announced


def test_an_oversize_body_with_a_key_gets_413_once_the_cap_is_crossed(guarded: Guarded) -> None:
    pid = guarded.worker()
    operator, admin = guarded.server.keys[Role.operator], guarded.server.keys[Role.admin]
    prefix, content_type = multipart_head()
    search = stream(guarded, "/v1/search", BIG, key=operator, prefix=prefix, headers=content_type)
    assert search.status == 413, search.head
    assert search.sent < PHOTO_LIMIT + 48 * MiB, search.sent
    assert "TooLarge" in search.head and "connection: close" in search.head.lower()
    small = stream(guarded, "/v1/keys", BIG, key=admin, headers="Content-Type: application/json\r\n")
    assert small.status == 413 and small.sent < 48 * MiB, (small.head, small.sent)  # JSON: 64 KiB
    assert open_temp_files(pid, guarded.tmp) == [] and list(guarded.tmp.iterdir()) == []
    announced = raw(  # what Content-Length says is checked too, before any byte is read
        guarded,
        f"POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {admin}\r\n"
        f"Content-Length: {MiB}\r\n\r\n",
    )
    assert announced.startswith(b"HTTP/1.1 413") and b"TooLarge" in announced, announced


def test_a_wrong_host_header_is_refused(guarded: Guarded) -> None:
    with guarded.server.client(Role.admin) as admin:
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
            refused = admin.get("/v1/whoami", headers={"Host": host})
            assert refused.status_code == 400, (host, refused.text)
            assert "Host" in refused.json()["error"]["message"]
        assert admin.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
        for host in (f"127.0.0.1:{guarded.port}", f"localhost:{guarded.port}", "localhost"):
            assert admin.get("/v1/whoami", headers={"Host": host}).status_code == 200, host


def test_failed_keys_are_throttled_per_client_and_audited_in_aggregate(guarded: Guarded) -> None:
    server = guarded.server
    statuses = []
    with client_at(server, "127.0.0.2") as attacker:
        for i in range(30):  # a new X-Forwarded-For each time changes nothing
            answer = attacker.get(
                "/v1/stats",
                headers={"Authorization": f"Bearer ff_guess{i}", "X-Forwarded-For": f"10.0.0.{i}"},
            )
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert 0 < int(answer.headers["retry-after"]) <= 60
        assert statuses == [401] * 10 + [429] * 20, statuses
        # Throttled means failures from there: a valid key and a valid sign-in are never refused
        # (keys are 256-bit random; the throttle spares the server and the audit log, not them).
        valid = {"Authorization": f"Bearer {server.keys[Role.admin]}"}
        assert attacker.get("/v1/whoami", headers=valid).status_code == 200
        assert attacker.post("/ui/session", json={"key": server.keys[Role.admin]}).status_code == 200
        wrong = attacker.post("/ui/session", json={"key": "ff_guess-sign-in"})
        assert wrong.status_code == 429 and "try again" in wrong.json()["error"]["message"], wrong.text
    with server.client(Role.admin) as elsewhere:  # another client address is not affected
        assert elsewhere.get("/v1/whoami").status_code == 200
    with server.client(Role.auditor) as auditor:
        entries = auditor.get("/v1/audit", params={"action": "authenticate"}).json()
    theirs = [e for e in entries if e["details"].get("client") == "127.0.0.2"]
    assert 1 <= len(theirs) <= 3, theirs  # the first failure, then the count: not 30 entries
    assert max(e["details"]["failures"] for e in theirs) == 10
    assert any(e["details"].get("routes") == {"/v1/stats": 10} for e in theirs)
    assert all(e["actor"] == "anonymous" for e in theirs)


def test_keyless_requests_are_not_throttled_but_answered_401_without_a_lookup(guarded: Guarded) -> None:
    with client_at(guarded.server, "127.0.0.3") as anonymous:
        assert [anonymous.get("/v1/stats").status_code for _ in range(15)] == [401] * 15
        with_key = anonymous.get(
            "/v1/whoami", headers={"Authorization": f"Bearer {guarded.server.keys[Role.dpo]}"}
        )
        assert with_key.status_code == 200


def _sign_in(server: Server, role: Role) -> tuple[httpx.Client, dict[str, str]]:
    browser = httpx.Client(base_url=server.url, timeout=60)
    signed = browser.post("/ui/session", json={"key": server.keys[role]})
    assert signed.status_code == 200, signed.text
    return browser, {"x-csrf-token": signed.json()["csrf_token"]}


def _cookie(browser: httpx.Client) -> tuple[str, str]:
    (name, value), *_ = [
        (c.name, c.value) for c in browser.cookies.jar if c.name.startswith("facefind_session")
    ]
    return name, value


def test_the_session_cookie_is_a_server_side_session_not_the_key(guarded: Guarded) -> None:
    server = guarded.server
    browser, token = _sign_in(server, Role.reviewer)
    try:
        signed = browser.get("/ui/session")
        assert signed.status_code == 200 and signed.json()["name"] == NAMES[Role.reviewer]
        name, session = _cookie(browser)
        assert session != server.keys[Role.reviewer] and server.keys[Role.reviewer][3:] not in session
        assert name == f"facefind_session_{guarded.port}"  # two servers on one host keep their own
        assert browser.get("/v1/whoami").json()["name"] == NAMES[Role.reviewer]
        # A page on another port of this host is the same site: the browser sends the cookie.
        elsewhere = {"Sec-Fetch-Site": "same-site"}
        assert browser.get("/v1/whoami", headers=elsewhere).status_code == 403
        assert browser.post("/ui/session", json={"key": "x"}, headers=elsewhere).status_code == 403
        assert browser.get("/v1/whoami", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
        ended = browser.delete("/ui/session", headers=token)
        assert ended.status_code == 200, ended.text
    finally:
        browser.close()
    with httpx.Client(base_url=server.url, cookies={name: session}) as replay:  # a copy of the cookie
        assert replay.get("/v1/whoami").status_code == 401
        assert replay.get("/ui/session").status_code == 401


def test_revoking_the_key_or_expiry_ends_its_sessions_at_once(guarded: Guarded) -> None:
    server = guarded.server
    with server.client(Role.admin) as admin:
        made = admin.post("/v1/keys", json={"name": "session-temp", "role": "reviewer"})
        assert made.status_code == 201, made.text
        browser = httpx.Client(base_url=server.url, timeout=60)
        assert browser.post("/ui/session", json={"key": made.json()["key"]}).status_code == 200
        assert browser.get("/v1/whoami").status_code == 200
        assert admin.delete("/v1/keys/session-temp").status_code == 200
        assert browser.get("/v1/whoami").status_code == 401
        browser.close()
    browser, _ = _sign_in(server, Role.auditor)
    try:
        assert browser.get("/v1/whoami").status_code == 200
        session = _cookie(browser)[1]
        with sqlite3.connect(server.db) as db:  # eight hours later, as far as the server knows
            db.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00+00:00'")
        assert browser.get("/v1/whoami").status_code == 401
        rows = sqlite3.connect(server.db).execute("SELECT id_sha256 FROM sessions").fetchall()
        assert rows and all(len(r[0]) == 64 and session not in r[0] for r in rows)  # only hashes
        assert not [c for c in browser.cookies.jar if c.name.startswith("facefind_session")]  # dropped
    finally:
        browser.close()


def test_a_stalled_body_or_head_is_cut_off(guarded: Guarded) -> None:
    admin = guarded.server.keys[Role.admin]
    body = socket.create_connection(("127.0.0.1", guarded.port), timeout=40)
    body.sendall(
        f"POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {admin}\r\n"
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name":'.encode()
    )
    head = socket.create_connection(("127.0.0.1", guarded.port), timeout=40)
    head.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    answers: dict[str, bytes] = {}

    def wait(name: str, sock: socket.socket) -> None:
        try:
            answers[name] = sock.recv(65536)
        except TimeoutError:
            answers[name] = b"still open"
        finally:
            sock.close()

    waiting = [threading.Thread(target=wait, args=pair) for pair in (("body", body), ("head", head))]
    for thread in waiting:
        thread.start()
    for thread in waiting:
        thread.join()
    assert answers["body"].startswith(b"HTTP/1.1 408"), answers["body"]
    assert answers["head"] in (b"",) or answers["head"].startswith(b"HTTP/1.1 4"), answers["head"]


def test_reserved_key_names_are_refused(guarded: Guarded) -> None:
    with guarded.server.client(Role.admin) as admin:
        for name in ("anonymous", "Root", "ANONYMOUS", " unknown ", "facefind-serve", "System"):
            refused = admin.post("/v1/keys", json={"name": name, "role": "reviewer"})
            assert refused.status_code == 400, (name, refused.text)
            assert "reserved" in refused.json()["error"]["message"]


def test_api_answers_are_not_cached_and_pages_have_a_strict_csp(guarded: Guarded) -> None:
    with guarded.server.client(Role.reviewer) as reviewer:
        for path in ("/v1/whoami", "/v1/people", "/v1/people/999999", "/v1/audit"):
            answer = reviewer.get(path)
            assert answer.headers["content-type"].startswith("application/json"), path
            assert "no-store" in answer.headers.get("cache-control", ""), (path, answer.headers)
        found = reviewer.post(
            "/v1/verify",
            files={"a": OBAMA.open("rb"), "b": OBAMA.open("rb")},
            headers={"Authorization": f"Bearer {guarded.server.keys[Role.operator]}"},
        )
        assert found.status_code == 200 and "no-store" in found.headers["cache-control"]
    with guarded.server.client() as anonymous:
        assert "no-store" in anonymous.get("/v1/whoami").headers.get("cache-control", "")
        for path in ("/docs", "/ui/", "/ui/assets/index.html"):
            page = anonymous.get(path)
            assert page.status_code == 200, path
            csp = page.headers.get("content-security-policy", "")
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (path, csp)
            assert "frame-ancestors 'none'" in csp, (path, csp)
        docs = anonymous.get("/docs").text
        assert "<script>" not in docs and "/docs-assets/swagger-ui-bundle.js" in docs


def test_sessions_end_at_sign_out_expiry_and_revocation_on_both_backends(backend_db: str | Path) -> None:
    import sqlalchemy as sa

    import facefind
    from facefind.accountability import keys, sessions
    from facefind.catalog.schema import sessions as table
    from facefind.errors import InvalidValue

    with facefind.open(backend_db, actor="setup") as ff:
        for name in ("anonymous", "ROOT", "\uff32\uff4f\uff4f\uff54", "facefind-serve", " Unknown "):
            with pytest.raises(InvalidValue, match="reserved"):
                ff.keys_add(name, "reviewer")
        key = ff.keys_add("ann", "reviewer").key
        who = keys.authenticate(ff.catalog, key)
        assert who is not None
        first, second = sessions.open_(ff.catalog, who), sessions.open_(ff.catalog, who)
        assert first.id != second.id and first.csrf != second.csrf and key not in (first.id, second.id)
        found = sessions.find(ff.catalog, first.id)
        assert found is not None and found.principal == who and found.csrf == first.csrf
        assert sessions.end(ff.catalog, first.id) and sessions.find(ff.catalog, first.id) is None
        assert not sessions.end(ff.catalog, first.id)  # once
        with ff.catalog.transaction() as conn:
            conn.execute(sa.update(table).values(expires_at="2000-01-01T00:00:00+00:00"))
        assert sessions.find(ff.catalog, second.id) is None  # expired, whatever the cookie says
        third = sessions.open_(ff.catalog, who)  # and the expired or ended ones are forgotten
        with ff.catalog.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 1
        ff.keys_revoke("ann")
        assert sessions.find(ff.catalog, third.id) is None
        with ff.catalog.engine.connect() as conn:
            assert conn.execute(sa.select(table.c.ended_at)).scalar() is not None


def test_the_api_docs_render_under_their_strict_csp_in_chromium(guarded: Guarded) -> None:
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{guarded.server.url}/docs")
        sync_api.expect(page.locator(".opblock-summary-path", has_text="/v1/search")).to_be_visible()
        browser.close()
    assert not problems, problems  # a script or style the CSP refused would be reported here


def test_the_allowed_hosts_and_the_throttles_addresses() -> None:
    from facefind.api.guard import allowed_hosts
    from facefind.api.throttle import Failures

    hosts = allowed_hosts(["0.0.0.0", "Photos.Example.", "[::1]:8000"])
    assert hosts == {"127.0.0.1", "localhost", "::1", "photos.example"}
    failures = Failures(limit=3)
    for host in ("2001:db8::1", "2001:db8::2", "2001:db8::ffff"):  # one /64: one IPv6 host
        failures.failed(host, "/v1/stats", "unknown or revoked key")
    assert failures.retry_after("2001:db8::42") is not None
    assert failures.retry_after("2001:db8:0:1::1") is None and failures.retry_after("127.0.0.9") is None
    failures.failed("127.0.0.9", "/v1/stats", "no key", guess=False)  # no key: not a guess
    assert failures.retry_after("127.0.0.9") is None


def test_strangers_at_many_addresses_cannot_lock_out_a_valid_key_nor_flood_the_audit_log(
    guarded: Guarded,
) -> None:
    """Failures from 60 loopback addresses (127.2.0.x), three each: every address gets its own
    count, nobody else's; the audit log gets a few entries, not one per address."""
    server = guarded.server
    with server.client(Role.auditor) as auditor:
        before = len(auditor.get("/v1/audit", params={"action": "authenticate"}).json())
    for n in range(1, 61):
        with client_at(server, f"127.2.0.{n}", key=f"ff_stranger{n}") as stranger:
            assert [stranger.get("/v1/stats").status_code for _ in range(3)] == [401] * 3
    with server.client(Role.auditor) as auditor:
        assert auditor.get("/v1/whoami").status_code == 200
        after = auditor.get("/v1/audit", params={"action": "authenticate"}).json()
    assert len(after) - before <= 10, after[before:]  # not 60
    with client_at(server, "127.2.1.1", key=server.keys[Role.dpo]) as fresh:
        assert fresh.get("/v1/whoami").status_code == 200
        assert fresh.post("/ui/session", json={"key": server.keys[Role.dpo]}).status_code == 200


def test_the_throttle_keeps_no_shared_bucket_and_sums_up_many_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from facefind.api import throttle
    from facefind.api.throttle import Failures

    monkeypatch.setattr(throttle, "MAX_ADDRESSES", 4)
    failures = Failures(limit=3)
    entries = []
    for n in range(40):  # 40 strangers, one guess each: the oldest windows are forgotten
        entries += failures.failed(f"127.3.0.{n}", "/v1/stats", "unknown or revoked key").due
    assert failures.retry_after("127.3.1.1") is None  # a newcomer is nobody's bucket
    for _ in range(3):
        entries += failures.failed("127.3.1.1", "/v1/stats", "unknown or revoked key").due
    assert failures.retry_after("127.3.1.1") is not None and failures.retry_after("127.3.1.2") is None
    entries += failures.ended(everything=True)
    assert len(entries) <= 10, entries
    # Five addresses have entries of their own; the other 36 (the last one too) are summed up.
    assert [e["client"] for e in entries if e["client"] != "(many addresses)"] == [
        f"127.3.0.{n}" for n in range(5)
    ]
    (summary,) = [e for e in entries if e["client"] == "(many addresses)"]
    assert summary["addresses"] == 36 and summary["failures"] == 38, summary
    assert sum(e["failures"] for e in entries) == 43, entries


def test_a_trickled_sign_in_body_is_cut_off_within_its_total_deadline(guarded: Guarded) -> None:
    """One byte every 2 s never stalls (10 s), but a keyless sign-in body has 10 s in all."""
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=40)
    sent = 0
    try:
        sock.sendall(
            b"POST /ui/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 60000\r\n\r\n{"key":"'
        )
        while sent < 15 and not select.select([sock], [], [], 2)[0]:  # 30 s of trickle at most
            sock.sendall(b"x")
            sent += 1
        answer = read_all(sock)
    finally:
        sock.close()
    assert sent < 15, (sent, answer)  # answered while the body was still trickling in
    assert answer.startswith(b"HTTP/1.1 408") and b"in all" in answer, answer
