#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""labtest: the compose lab's end-to-end checks, run in the client container
by scripts/lab test (python3 /usr/local/bin/labtest).

It waits until the lab is ready, then logs in over IMAP, POP3 and
ManageSieve through the gateways (gw1, gw2, gw3), delivers over LMTP and
reads the mail back over IMAP, logs in as a master user, checks that a user
pinned by LDAP's mailHost lands on backend2, and drains the backend a held
session is on through the admin API, watching the session end and the user
come back on the other backend. Each check prints one line with its time;
the exit status is 0 only when every check passed. On failure the last line
is "LAB-SUSPECTS: <services>", the services whose logs scripts/lab prints.

Which backend a session reached is the backend's own word: each Dovecot
names itself in its IMAP ID answer ("x-backend"), which a client sees only
after the gateway relayed it there.
"""

import base64
import concurrent.futures
import email.utils
import imaplib
import json
import os
import poplib
import re
import smtplib
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid

GATEWAYS = ["gw1", "gw2", "gw3"]
BACKENDS = ["backend1", "backend2"]
TOKEN = os.environ.get("LAB_ADMIN_TOKEN", "")
MASTER, MASTER_PASSWORD = "proxymaster", "masterpw"
SQL_USER, SQL_PASSWORD = "sqluser@example.net", "pw-sqluser"
READY_TIMEOUT = float(os.environ.get("LAB_READY_TIMEOUT", "240"))

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))


class Failure(Exception):
    """A check's expectation that did not hold."""


def user(n):
    return f"user{n:04d}@example.com"


def password(n):
    return f"pw-user{n:04d}"


def quote(s):
    """An IMAP quoted string (imaplib sends LOGIN's user name as it is)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def expect(cond, text):
    if not cond:
        raise Failure(text)


# ---------------------------------------------------------------- IMAP


def imap_login(gw, name, pw):
    c = imaplib.IMAP4(gw, 143, timeout=20)
    try:
        c.login(quote(name), pw)
    except Exception:
        c.shutdown()
        raise
    return c


def backend_of(c):
    """The backend a logged-in session is relayed to, from its ID answer."""
    typ, dat = c._simple_command("ID", "NIL")
    typ, dat = c._untagged_response(typ, dat, "ID")
    text = b" ".join(d if isinstance(d, bytes) else b"".join(d) for d in dat if d).decode()
    m = re.search(r'"x-backend" "([^"]+)"', text)
    expect(m, f"no x-backend in the backend's ID answer: {text!r}")
    return m.group(1)


def find_subject(c, mailbox, token):
    typ, _ = c.select(quote(mailbox))
    expect(typ == "OK", f"SELECT {mailbox}: {typ}")
    typ, dat = c.search(None, "SUBJECT", quote(token))
    expect(typ == "OK", f"SEARCH: {typ}")
    return dat[0].split()


def login_refused(gw, name, pw):
    """The answer to a login that must fail, as a string."""
    try:
        c = imap_login(gw, name, pw)
    except imaplib.IMAP4.error as e:
        return str(e)
    c.logout()
    raise Failure(f"{gw}: {name} logged in with a wrong password")


# ---------------------------------------------------------------- ManageSieve


class Sieve:
    """Just enough of a ManageSieve client (RFC 5804) for the checks."""

    def __init__(self, host, port=4190):
        self.sock = socket.create_connection((host, port), timeout=20)
        self.f = self.sock.makefile("rb")
        self.greeting, _, _ = self.response()

    def line(self):
        raw = self.f.readline()
        if not raw:
            raise Failure("ManageSieve: connection closed")
        return raw.rstrip(b"\r\n").decode()

    def response(self):
        """(final line, other lines, literals) of one response."""
        lines, literals = [], []
        while True:
            text = self.line()
            m = re.search(r"\{(\d+)\+?\}$", text)
            if m:
                literals.append(self.f.read(int(m.group(1))).decode())
                continue
            if text.split(" ", 1)[0] in ("OK", "NO", "BYE"):
                return text, lines, literals
            if text:
                lines.append(text)

    def cmd(self, text, literal=None):
        data = text.encode()
        if literal is not None:
            body = literal.encode()
            data += b" {%d+}\r\n" % len(body) + body
        self.sock.sendall(data + b"\r\n")
        final, lines, literals = self.response()
        expect(final.startswith("OK"), f"ManageSieve {text.split()[0]}: {final}")
        return lines, literals

    def close(self):
        self.f.close()
        self.sock.close()


SIEVE_SCRIPT = """require ["fileinto", "mailbox"];
if header :contains "subject" "lab-sieve" {
  fileinto :create "Lab";
}
"""


# ---------------------------------------------------------------- LMTP, API


def lmtp_deliver(gw, rcpt, subject):
    msg = (
        f"From: lab@example.org\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{uuid.uuid4()}@lab.example.org>\r\n"
        "\r\nDelivered by the maildirector lab.\r\n"
    )
    with smtplib.LMTP(gw, 24, timeout=30) as l:
        code, text = l.ehlo("client.lab")
        expect(code == 250, f"LHLO: {code} {text!r}")
        code, text = l.mail("lab@example.org")
        expect(code == 250, f"MAIL: {code} {text!r}")
        code, text = l.rcpt(rcpt)
        expect(code == 250, f"RCPT {rcpt}: {code} {text!r}")
        code, text = l.data(msg.encode())
        expect(code == 250, f"DATA: {code} {text!r}")
        return text.decode()


def api(gw, method, path, timeout=30):
    """(status, JSON) of an admin API request to gw."""
    req = urllib.request.Request(
        f"http://{gw}:8080{path}", method=method, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, {"error": body}


def api_ok(gw, method, path, timeout=30):
    status, body = api(gw, method, path, timeout)
    expect(status == 200, f"{method} {path} on {gw}: {status} {body}")
    return body


def ip_of(name):
    return socket.gethostbyname(name)


# ---------------------------------------------------------------- checks

results = []


def run(name, suspects, fn):
    """Runs one check, prints its line, records the result."""
    start = time.monotonic()
    try:
        note = fn()
        ok, text = True, note or ""
    except Exception as e:  # every failure is a finding, not a crash
        ok, text = False, f"{type(e).__name__}: {e}" if not isinstance(e, Failure) else str(e)
    took = time.monotonic() - start
    results.append((name, ok, took, suspects))
    print(f"  {'ok  ' if ok else 'FAIL'} {took:6.1f}s  {name}{': ' + text if text else ''}", flush=True)
    return ok


def poll(what, fn, deadline):
    """Calls fn until it returns without raising; the last error on timeout."""
    while True:
        try:
            return fn()
        except Exception as e:
            if time.monotonic() > deadline:
                raise Failure(f"{what}: not ready after {READY_TIMEOUT:.0f}s: {e}")
            time.sleep(0.5)


def check_ready():
    deadline = time.monotonic() + READY_TIMEOUT

    def greets(host):
        c = imaplib.IMAP4(host, 143, timeout=5)
        c.shutdown()

    for b in BACKENDS:
        poll(b, lambda: greets(b), deadline)

    def store_ready(gw):
        st = api_ok(gw, "GET", "/api/v1/status", timeout=5)
        hosts = st.get("hosts") or []
        expect(len(hosts) == 2, f"{len(hosts)} backends in the store")
        names = sorted(g["name"] for g in st.get("gateways") or [] if not g.get("fenced"))
        expect(names == GATEWAYS, f"gateways serving: {names}")

    for gw in GATEWAYS:
        poll(gw, lambda: greets(gw), deadline)
        poll(f"{gw} store", lambda: store_ready(gw), deadline)
    # a login needs slapd, and the SQL user MariaDB
    poll("LDAP login", lambda: imap_login("gw1", user(1), password(1)).logout(), deadline)
    poll("SQL login", lambda: imap_login("gw1", SQL_USER, SQL_PASSWORD).logout(), deadline)
    # leave no backend drained by an interrupted run
    undrained = []
    for h in api_ok("gw1", "GET", "/api/v1/hosts"):
        if h.get("drained"):
            api_ok("gw1", "POST", f"/api/v1/hosts/{h['ip']}/undrain")
            undrained.append(h["ip"])
    ips = ", ".join(f"{b} {ip_of(b)}" for b in BACKENDS)
    return f"3 gateways serving, one store, backends {ips}" + (
        f" (undrained {undrained} left by an earlier run)" if undrained else ""
    )


def check_imap():
    u = user(1)
    seen = {}
    for gw in GATEWAYS:
        c = imap_login(gw, u, password(1))
        typ, _ = c.select("INBOX")
        expect(typ == "OK", f"SELECT INBOX through {gw}: {typ}")
        seen[gw] = backend_of(c)
        c.logout()
    expect(len(set(seen.values())) == 1, f"{u} reached different backends: {seen}")
    b = seen["gw1"]
    info = api_ok("gw2", "GET", f"/api/v1/users/{u}")
    expect(info.get("current") == ip_of(b), f"the store has {u} on {info.get('current')}, the session was on {b}")
    return f"{u} through gw1, gw2, gw3: {b} each time, as the store says"


def check_pop3():
    u = user(2)
    p = poplib.POP3("gw2", 110, timeout=20)
    try:
        p.user(u)
        p.pass_(password(2))
        count, size = p.stat()
        p.list()
    finally:
        p.quit()
    return f"{u} through gw2: STAT {count} messages, {size} octets"


def check_sieve():
    u = user(3)
    s = Sieve("gw3")
    try:
        auth = base64.b64encode(f"\0{u}\0{password(3)}".encode()).decode()
        s.cmd(f'AUTHENTICATE "PLAIN" "{auth}"')
        s.cmd('PUTSCRIPT "lab"', SIEVE_SCRIPT)
        s.cmd('SETACTIVE "lab"')
        lines, _ = s.cmd("LISTSCRIPTS")
        expect('"lab" ACTIVE' in lines, f"LISTSCRIPTS: {lines}")
        _, literals = s.cmd('GETSCRIPT "lab"')
        expect(literals and literals[0].replace("\r\n", "\n") == SIEVE_SCRIPT, f"GETSCRIPT: {literals}")
        s.cmd("LOGOUT")
    finally:
        s.close()
    return f"{u} through gw3: PUTSCRIPT, SETACTIVE, LISTSCRIPTS, GETSCRIPT"


def check_lmtp():
    u = user(4)
    token = f"lab-lmtp-{uuid.uuid4().hex[:12]}"
    reply = lmtp_deliver("gw1", u, token)
    c = imap_login("gw3", u, password(4))
    try:
        found = find_subject(c, "INBOX", token)
        expect(len(found) == 1, f"{token}: {len(found)} messages in INBOX")
    finally:
        c.logout()
    return f"to {u} through gw1 ({reply}), read back through gw3"


def check_sieve_delivery():
    u = user(3)
    token = f"lab-sieve-{uuid.uuid4().hex[:12]}"
    lmtp_deliver("gw2", u, token)
    c = imap_login("gw1", u, password(3))
    try:
        found = find_subject(c, "Lab", token)
        expect(len(found) == 1, f"{token}: {len(found)} messages in Lab")
    finally:
        c.logout()
    return f"to {u} through gw2, filed into Lab by the Sieve script, read back through gw1"


def check_sql():
    c = imap_login("gw2", SQL_USER, SQL_PASSWORD)
    b = backend_of(c)
    c.logout()
    return f"{SQL_USER} (only in MariaDB) through gw2: on {b}"


def check_master():
    u = user(5)
    token = f"lab-master-{uuid.uuid4().hex[:12]}"
    c = imap_login("gw1", u, password(5))
    msg = f"From: lab@example.org\r\nSubject: {token}\r\n\r\nappended\r\n".encode()
    typ, _ = c.append("INBOX", None, None, msg)
    expect(typ == "OK", f"APPEND: {typ}")
    c.logout()
    # LOGIN user*master, and SASL PLAIN with an authorization identity
    c = imap_login("gw2", f"{u}*{MASTER}", MASTER_PASSWORD)
    try:
        expect(len(find_subject(c, "INBOX", token)) == 1, f"{u}*{MASTER} does not see {u}'s mail")
    finally:
        c.logout()
    c = imaplib.IMAP4("gw3", 143, timeout=20)
    try:
        c.authenticate("PLAIN", lambda _: f"{u}\0{MASTER}\0{MASTER_PASSWORD}".encode())
        expect(len(find_subject(c, "INBOX", token)) == 1, f"PLAIN as {u} by {MASTER} does not see its mail")
    finally:
        c.logout()
    return f"{u}*{MASTER} through gw2 and AUTHENTICATE PLAIN (authzid) through gw3 read {u}'s INBOX"


def check_pinned():
    u = user(7)
    seen = {}
    for gw in GATEWAYS:
        c = imap_login(gw, u, password(7))
        seen[gw] = backend_of(c)
        c.logout()
    expect(set(seen.values()) == {"backend2"}, f"{u} (mailHost backend2) reached {seen}")
    hashed = api_ok("gw1", "GET", f"/api/v1/users/{u}").get("hashed")
    ring = {ip_of(b): b for b in BACKENDS}.get(hashed, hashed)
    return f"{u} (LDAP mailHost: backend2) on backend2 through every gateway; the ring alone says {ring}"


def check_drain():
    u = user(8)
    held = imap_login("gw1", u, password(8))
    try:
        typ, _ = held.select("INBOX")
        expect(typ == "OK", f"SELECT: {typ}")
        b = backend_of(held)
        other = [x for x in BACKENDS if x != b][0]
        ip = ip_of(b)
        start = time.monotonic()
        api_ok("gw2", "POST", f"/api/v1/hosts/{ip}/drain?kick_after=1s&timeout=60s", timeout=120)
        took = time.monotonic() - start
        try:
            held.noop()
            ended = False
        except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError):
            ended = True
        expect(ended, f"the session of {u} on {b} is still open after the drain")
    finally:
        try:
            held.shutdown()
        except OSError:
            pass
    host = api_ok("gw3", "GET", f"/api/v1/hosts/{ip}")
    expect(host.get("drained") and host.get("vhosts") == 0, f"{b} after the drain: {host}")
    c = imap_login("gw3", u, password(8))
    now = backend_of(c)
    c.logout()
    expect(now == other, f"{u} came back on {now}, not {other}")
    info = api_ok("gw1", "GET", f"/api/v1/users/{u}")
    expect(info.get("current") == ip_of(other), f"the store has {u} on {info.get('current')}")
    api_ok("gw1", "POST", f"/api/v1/hosts/{ip}/undrain")
    host = api_ok("gw2", "GET", f"/api/v1/hosts/{ip}")
    expect(not host.get("drained") and host.get("vhosts", 0) > 0, f"{b} after undrain: {host}")
    return (
        f"{u} held on {b} through gw1; drain of {b} ({ip}) through gw2's API took {took:.1f}s "
        f"and ended the session; back through gw3 on {other}; undrained ({host['vhosts']} vhosts)"
    )


def check_refusals():
    want = "[AUTHENTICATIONFAILED]"
    cases = [
        ("gw1", user(9), "wrong"),
        ("gw2", "nobody@example.com", "x"),
        ("gw3", f"{user(9)}*{MASTER}", "wrong"),
    ]
    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
        answers = list(pool.map(lambda c: login_refused(*c), cases))
    for (gw, name, _), a in zip(cases, answers):
        expect(want in a, f"{name} through {gw}: {a}")
    return "wrong password, unknown user, wrong master password: " + want


CHECKS = [
    ("imap: one user, three gateways, one backend", "gw1 gw2 gw3 ldap backend1 backend2", check_imap),
    ("pop3 login", "gw2 ldap backend1 backend2", check_pop3),
    ("managesieve: store and activate a script", "gw3 ldap backend1 backend2", check_sieve),
    ("lmtp delivery read back over imap", "gw1 gw3 ldap backend1 backend2", check_lmtp),
    ("lmtp delivery through the sieve script", "gw1 gw2 ldap backend1 backend2", check_sieve_delivery),
    ("sql passdb", "gw2 mariadb ldap backend1 backend2", check_sql),
    ("master user", "gw1 gw2 gw3 ldap backend1 backend2", check_master),
    ("pinned by LDAP mailHost", "gw1 gw2 gw3 ldap backend2", check_pinned),
    ("drain through the admin API, a session moving", "gw1 gw2 gw3 backend1 backend2", check_drain),
    ("refused logins", "gw1 gw2 gw3 ldap", check_refusals),
]


def main():
    start = time.monotonic()
    print("lab checks (client container):", flush=True)
    if run("ready", "gw1 gw2 gw3 ldap mariadb backend1 backend2", check_ready):
        for name, suspects, fn in CHECKS:
            run(name, suspects, fn)
    failed = [r for r in results if not r[1]]
    print(
        f"lab checks: {len(results) - len(failed)}/{len(results)} passed in {time.monotonic() - start:.1f}s",
        flush=True,
    )
    if failed:
        suspects = sorted({s for r in failed for s in r[3].split()})
        print("LAB-SUSPECTS: " + " ".join(suspects), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
