#!/usr/bin/env python3
"""Load client and checker for tests/fault/postgres_restart.sh.

Standard library only (Python 3.11). Three subcommands:

  load.py run    --url U --work DIR    keeps signups, logins and `me` going and
                                       polls /readyz until DIR/stop exists;
                                       writes DIR/results.json
  load.py drain  --url U --timeout S   waits until /metrics reports an empty
                                       outbox (exit 0), else exits 3
  load.py trigger --mail-dir M --pid-file P
                                       stops PostgreSQL (SIGINT to the
                                       postmaster) as soon as a mail file appears
  load.py verify --url U --work DIR --mail-dir M
                                       signs every accepted signup in again,
                                       counts mail files per recipient, judges
                                       every answer against the outage window
                                       in DIR/events and prints PASS or FAIL

Every answer is sorted into one kind: `ok`, `INTERNAL` (HTTP 200 with a
well-formed INTERNAL error), or a violation such as `http-502`, `reset`,
`refused`, `hang`, `leaky-message`, `internal-no-request-id`, `error-<CODE>`.
"""

from __future__ import annotations

import argparse
import collections
import email
import email.policy
import email.utils
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

PASSWORD = "a fault test passphrase 42"
# The server gives one GraphQL request 30 s; anything slower is a hang.
SERVER_TIMEOUT = 30.0
HANG_AFTER = SERVER_TIMEOUT + 2.0
CLIENT_TIMEOUT = SERVER_TIMEOUT + 10.0
READYZ_TIMEOUT = 5.0
# How soon after PostgreSQL is back /readyz must say 200 again.
READY_AGAIN_WITHIN = float(os.environ.get("FAULT_READY_WITHIN_SECS", "5"))

SIGNUP = "mutation($i: SignupInput!) { signup(input: $i) { accepted } }"
LOGIN = "mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { token } }"
ME = "{ me { id username } }"
POLICY = "{ policy { version } }"

# What an INTERNAL message must never carry: SQL, driver and pool words,
# file paths, Rust source locations, panics and backtraces.
LEAK = re.compile(
    r"\b(select|insert|update|delete|from|where|returning)\b\s|sqlx|sea.?orm|dberr|"
    r"postgres|sqlstate|\bpool\b|connection|socket|refused|terminat|\.rs\b|/src/|"
    r"/tmp/|/home/|/root/|/usr/|panick|backtrace|stack|tokio|os error|io error",
    re.IGNORECASE,
)


# --------------------------------------------------------------------- HTTP


class Target:
    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                timeout: float = CLIENT_TIMEOUT) -> tuple[int, bytes]:
        """One request on a fresh connection (so an idle keep-alive closing
        can never pass for a reset caused by the outage)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            all_headers = {"connection": "close"}
            all_headers.update(headers or {})
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def transport_kind(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "hang"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError,
                        http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return "reset"
    return "conn-error"


def judge_graphql(status: int, raw: bytes, op: str) -> tuple[str, dict | None, str]:
    """(kind, data, detail) for one /graphql answer."""
    if status >= 500:
        return f"http-{status}", None, raw[:200].decode("utf-8", "replace")
    if status != 200:
        return f"http-{status}", None, raw[:200].decode("utf-8", "replace")
    try:
        body = json.loads(raw)
    except ValueError:
        return "bad-json", None, raw[:200].decode("utf-8", "replace")
    errors = body.get("errors") or []
    if not errors:
        data = body.get("data")
        if not isinstance(data, dict) or data.get(op) is None:
            return "no-data", None, json.dumps(body)[:200]
        return "ok", data, ""
    for error in errors:
        ext = error.get("extensions") or {}
        code = ext.get("code")
        if code != "INTERNAL":
            return f"error-{code}", None, json.dumps(error)[:300]
        if not ext.get("requestId"):
            return "internal-no-request-id", None, json.dumps(error)[:300]
        unexpected = set(ext) - {"code", "requestId", "messageKey"}
        text = json.dumps({k: v for k, v in error.items() if k != "extensions"})
        if unexpected or LEAK.search(text):
            return "leaky-message", None, json.dumps(error)[:300]
    return "INTERNAL", None, errors[0].get("message", "")


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[dict] = []

    def add(self, record: dict) -> None:
        with self.lock:
            self.records.append(record)


def graphql(target: Target, rec: Recorder | None, op: str, query: str,
            variables: dict | None = None, token: str | None = None,
            note: str = "") -> tuple[str, dict | None]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    t0 = time.time()
    try:
        status, raw = target.request("POST", "/graphql", body, headers)
        kind, data, detail = judge_graphql(status, raw, op)
    except Exception as exc:  # every transport failure is a finding, never a crash
        status, kind, data, detail = 0, transport_kind(exc), None, repr(exc)[:200]
    t1 = time.time()
    if t1 - t0 > HANG_AFTER:
        kind, detail = "hang", f"answered after {t1 - t0:.1f} s ({kind})"
    if rec is not None:
        rec.add({"op": op, "t0": t0, "t1": t1, "status": status, "kind": kind,
                 "detail": detail, "note": note})
    return kind, data


def signup_vars(version: str, username: str) -> dict:
    return {"i": {"username": username, "email": f"{username}@fault.example",
                  "password": PASSWORD, "acceptPolicyVersion": version,
                  "age": "ADULT"}}


# ---------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    target = Target(args.url)
    work = Path(args.work)
    stop_file = work / "stop"
    rec = Recorder()
    kind, data = graphql(target, None, "policy", POLICY)
    if kind != "ok":
        print(f"load: cannot read the policy version ({kind})", file=sys.stderr)
        return 2
    version = data["policy"]["version"]
    run_id = args.run_id
    accepted: list[str] = []
    attempted: list[dict] = []
    lists_lock = threading.Lock()

    # One account made before the load, whose session the `me` workers reuse.
    seed = f"{run_id}seed"
    kind, _ = graphql(target, rec, "signup", SIGNUP, signup_vars(version, seed), note=seed)
    if kind != "ok":
        print(f"load: seed signup failed ({kind})", file=sys.stderr)
        return 2
    accepted.append(seed)
    attempted.append({"username": seed, "kind": "ok"})
    kind, data = graphql(target, rec, "login", LOGIN, {"l": seed, "p": PASSWORD}, note=seed)
    if kind != "ok":
        print(f"load: seed login failed ({kind})", file=sys.stderr)
        return 2
    seed_token = data["login"]["token"]

    def signup_worker(wid: int) -> None:
        n = 0
        while not stop_file.exists():
            n += 1
            username = f"{run_id}w{wid}n{n}"
            kind, data = graphql(target, rec, "signup", SIGNUP,
                                 signup_vars(version, username), note=username)
            ok = kind == "ok" and data["signup"]["accepted"] is True
            with lists_lock:
                attempted.append({"username": username, "kind": kind})
                if ok:
                    accepted.append(username)
            if not ok:
                time.sleep(0.05)
                continue
            kind, data = graphql(target, rec, "login", LOGIN,
                                 {"l": username, "p": PASSWORD}, note=username)
            if kind != "ok":
                continue
            kind, data = graphql(target, rec, "me", ME, token=data["login"]["token"],
                                 note=username)
            if kind == "ok" and data["me"]["username"] != username:
                rec.add({"op": "me", "t0": time.time(), "t1": time.time(), "status": 200,
                         "kind": "wrong-account", "detail": "", "note": username})

    def me_worker() -> None:
        while not stop_file.exists():
            graphql(target, rec, "me", ME, token=seed_token, note=seed)
            time.sleep(0.02)

    readyz: list[dict] = []

    def readyz_poller() -> None:
        while not stop_file.exists():
            t0 = time.time()
            try:
                status, _ = target.request("GET", "/readyz", timeout=READYZ_TIMEOUT)
                kind = str(status)
            except Exception as exc:
                kind = transport_kind(exc)
            readyz.append({"t0": t0, "t1": time.time(), "kind": kind})
            time.sleep(0.1)

    threads = [threading.Thread(target=signup_worker, args=(w,)) for w in range(args.signup_workers)]
    threads += [threading.Thread(target=me_worker) for _ in range(args.me_workers)]
    threads.append(threading.Thread(target=readyz_poller))
    for t in threads:
        t.start()
    (work / "load.started").write_text(str(time.time()))
    for t in threads:
        t.join()
    out = {"version": version, "accepted": accepted, "attempted": attempted,
           "records": sorted(rec.records, key=lambda r: r["t0"]), "readyz": readyz}
    (work / "results.json").write_text(json.dumps(out))
    return 0


# -------------------------------------------------------------------- drain


def outbox_pending(target: Target) -> int | None:
    try:
        status, raw = target.request("GET", "/metrics", timeout=5)
    except Exception:
        return None
    if status != 200:
        return None
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("custos_outbox_pending"):
            return int(float(line.split()[-1]))
    return None


def wait_for_drain(url: str, timeout: float) -> tuple[bool, str]:
    target = Target(url)
    deadline = time.time() + timeout
    pending = None
    started = time.time()
    while time.time() < deadline:
        pending = outbox_pending(target)
        if pending == 0:
            return True, f"outbox empty after {time.time() - started:.1f} s"
        time.sleep(0.5)
    return False, f"outbox not empty after {timeout:.0f} s: {pending} pending"


def cmd_drain(args: argparse.Namespace) -> int:
    drained, message = wait_for_drain(args.url, args.timeout)
    print(message)
    return 0 if drained else 3


# ------------------------------------------------------------------ trigger


def cmd_trigger(args: argparse.Namespace) -> int:
    """Stops PostgreSQL (SIGINT to the postmaster: a fast shutdown, what
    `pg_ctl stop -m fast` sends) the moment a new mail file appears, i.e. in
    the middle of an outbox tick, between a send and the write-back of its
    outcome: the moment where mail could be lost or sent twice."""
    mail_dir = Path(args.mail_dir)
    pid = int(Path(args.pid_file).read_text().splitlines()[0])

    def count() -> int:
        with os.scandir(mail_dir) as entries:
            return sum(1 for e in entries if e.name.endswith(".eml"))

    def stop() -> None:
        with open(args.events, "a") as fh:
            fh.write(f"down_begin {time.time()}\n")
        os.kill(pid, signal.SIGINT)  # fast shutdown

    baseline = count()
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        if count() > baseline:
            stop()
            print(f"stopping PostgreSQL (fast) under load, while the outbox sends mail {baseline + 1}")
            return 0
        time.sleep(0.001)
    stop()
    print(f"stopping PostgreSQL (fast) under load (no outbox send seen in {args.timeout:.0f} s)")
    return 0


# ------------------------------------------------------------------- verify


def read_events(path: Path) -> dict[str, float]:
    events = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        events[name] = float(value)
    return events


def count_mail(mail_dir: Path) -> tuple[collections.Counter, collections.Counter, int]:
    per_recipient: collections.Counter = collections.Counter()
    per_message_id: collections.Counter = collections.Counter()
    files = 0
    for path in sorted(mail_dir.glob("*.eml")):
        files += 1
        with path.open("rb") as fh:
            msg = email.message_from_binary_file(fh, policy=email.policy.default)
        for _, addr in email.utils.getaddresses(msg.get_all("to", [])):
            per_recipient[addr.lower()] += 1
        per_message_id[str(msg.get("message-id", path.name))] += 1
    return per_recipient, per_message_id, files


def cmd_verify(args: argparse.Namespace) -> int:
    target = Target(args.url)
    work = Path(args.work)
    results = json.loads((work / "results.json").read_text())
    ev = read_events(work / "events")
    failures: list[str] = []
    warnings: list[str] = []

    def rel(t: float) -> str:
        return f"{t - ev['down_begin']:+.1f} s"

    # ---- readyz transitions
    samples = results["readyz"]
    transitions = []
    last = None
    for s in samples:  # by the time each answer arrived
        if s["kind"] != last:
            transitions.append((s["t1"], last, s["kind"]))
            last = s["kind"]
    before_bad = [s for s in samples if s["t1"] < ev["down_begin"] and s["kind"] != "200"]
    while_down = [s for s in samples if s["t0"] >= ev["down"] and s["t1"] <= ev["up_begin"]]
    down_bad = [s for s in while_down if s["kind"] != "503"]
    after_up = [s for s in samples if s["t1"] >= ev["up"]]
    first_ok = next((s for s in after_up if s["kind"] == "200"), None)
    if before_bad:
        failures.append(f"/readyz answered {before_bad[0]['kind']} before the outage")
    if not while_down:
        failures.append("no /readyz answer was seen while PostgreSQL was down")
    elif down_bad:
        kinds = collections.Counter(s["kind"] for s in down_bad)
        failures.append(f"/readyz while PostgreSQL was down answered {dict(kinds)} (want only 503)")
    ready_again = None
    if first_ok is None:
        failures.append("/readyz never answered 200 again after PostgreSQL came back")
    else:
        ready_again = first_ok["t1"]
        delay = ready_again - ev["up"]
        if delay > READY_AGAIN_WITHIN:
            failures.append(f"/readyz took {delay:.1f} s after PostgreSQL was back to answer 200 "
                            f"(limit {READY_AGAIN_WITHIN:.0f} s)")
        flaps = [s for s in after_up if s["t1"] > ready_again and s["kind"] != "200"]
        if flaps:
            failures.append(f"/readyz fell back to {flaps[0]['kind']} at {rel(flaps[0]['t0'])} "
                            "after recovering")
    window_end = ready_again if ready_again is not None else float("inf")

    # ---- every answer, by phase
    phases = {"before": collections.Counter(), "during": collections.Counter(),
              "after": collections.Counter()}
    bad: dict[str, list[dict]] = {"before": [], "during": [], "after": []}
    slowest = 0.0
    for r in results["records"]:
        if r["t1"] < ev["down_begin"]:
            phase = "before"
        elif r["t0"] > window_end:
            phase = "after"
        else:
            phase = "during"
        phases[phase][r["kind"]] += 1
        slowest = max(slowest, r["t1"] - r["t0"])
        allowed = {"ok", "INTERNAL"} if phase == "during" else {"ok"}
        if r["kind"] not in allowed:
            bad[phase].append(r)
    for phase, rows in bad.items():
        if rows:
            kinds = collections.Counter(r["kind"] for r in rows)
            first = rows[0]
            failures.append(
                f"{len(rows)} bad answers {phase} the outage {dict(kinds)}; first: "
                f"{first['op']} at {rel(first['t0'])}: {first['detail']}")
    if phases["during"]["INTERNAL"] == 0:
        warnings.append("no request overlapping the outage was answered INTERNAL "
                        "(every one waited for PostgreSQL and succeeded)")

    # ---- recovery without restart: every accepted signup signs in, `me` works
    accepted: list[str] = results["accepted"]
    attempted = {a["username"]: a["kind"] for a in results["attempted"]}
    verify_rec = Recorder()
    lock = threading.Lock()
    cannot_sign_in: list[tuple[str, str]] = []
    queue = list(accepted)

    def verifier() -> None:
        while True:
            with lock:
                if not queue:
                    return
                username = queue.pop()
            kind, data = graphql(target, verify_rec, "login", LOGIN,
                                 {"l": username, "p": PASSWORD}, note=username)
            if kind == "ok":
                kind, data = graphql(target, verify_rec, "me", ME,
                                     token=data["login"]["token"], note=username)
                if kind == "ok" and data["me"]["username"] != username:
                    kind = "wrong-account"
            if kind != "ok":
                with lock:
                    cannot_sign_in.append((username, kind))

    verifiers = [threading.Thread(target=verifier) for _ in range(4)]
    for t in verifiers:
        t.start()
    for t in verifiers:
        t.join()
    if cannot_sign_in:
        failures.append(f"{len(cannot_sign_in)} of {len(accepted)} accepted signups cannot sign in "
                        f"afterwards, e.g. {cannot_sign_in[:3]}")
    fresh = f"{args.run_id}fresh"
    fresh_ok = True
    kind, data = graphql(target, verify_rec, "signup", SIGNUP,
                         signup_vars(results["version"], fresh), note=fresh)
    fresh_ok &= kind == "ok" and data["signup"]["accepted"] is True
    if fresh_ok:
        kind, data = graphql(target, verify_rec, "login", LOGIN,
                             {"l": fresh, "p": PASSWORD}, note=fresh)
        fresh_ok &= kind == "ok"
    if fresh_ok:
        kind, data = graphql(target, verify_rec, "me", ME, token=data["login"]["token"],
                             note=fresh)
        fresh_ok &= kind == "ok" and data["me"]["username"] == fresh
    if not fresh_ok:
        failures.append(f"a fresh signup -> login -> me after recovery failed ({kind})")
    else:
        accepted = accepted + [fresh]

    # ---- mail: exactly one verification mail per accepted signup
    drained, drain_message = wait_for_drain(args.url, args.drain_timeout)
    if not drained:
        failures.append(f"the outbox did not drain after recovery ({drain_message})")
    per_recipient, per_message_id, files = count_mail(Path(args.mail_dir))
    accepted_set = set(accepted)
    missing = [u for u in accepted if per_recipient[f"{u}@fault.example"] == 0]
    duplicated = {a: n for a, n in per_recipient.items() if n > 1}
    dup_ids = {m: n for m, n in per_message_id.items() if n > 1}
    strangers = [a for a in per_recipient
                 if a.split("@")[0] not in attempted and a.split("@")[0] != fresh]
    # A signup answered INTERNAL may still have committed (the commit's reply
    # was lost): its mail may arrive, once at most, but nobody was promised it.
    unpromised = [a for a in per_recipient
                  if a.split("@")[0] in attempted and a.split("@")[0] not in accepted_set]
    if missing:
        failures.append(f"{len(missing)} accepted signups got no verification mail, "
                        f"e.g. {missing[:3]}")
    if duplicated:
        failures.append(f"{len(duplicated)} recipients got more than one mail: "
                        f"{dict(list(duplicated.items())[:5])} (Message-IDs sent twice: "
                        f"{len(dup_ids)})")
    if strangers:
        failures.append(f"mail to addresses nobody signed up with: {strangers[:3]}")

    # ---- summary
    signup_kinds = collections.Counter(attempted.values())
    print()
    print("=== PostgreSQL restart under load: summary")
    print(f"outage: stop began {ev['down_begin'] - ev['load_start']:.1f} s into the load; "
          f"stopped after {ev['down'] - ev['down_begin']:.1f} s; down for "
          f"{ev['up_begin'] - ev['down']:.1f} s; start took {ev['up'] - ev['up_begin']:.1f} s")
    for phase in ("before", "during", "after"):
        total = sum(phases[phase].values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(phases[phase].items()))
        print(f"answers {phase:<6} the outage: {total:>5}  ({kinds or 'none'})")
    print(f"slowest answer: {slowest:.1f} s (server limit {SERVER_TIMEOUT:.0f} s)")
    print("readyz transitions (relative to the stop): " + "; ".join(
        f"{old or 'start'} -> {new} at {rel(t)}" for t, old, new in transitions))
    print(f"  PostgreSQL stopped at {rel(ev['down'])}, started at {rel(ev['up_begin'])}, "
          f"ready at {rel(ev['up'])}; /readyz 200 again "
          + (f"{ready_again - ev['up']:.1f} s after that" if ready_again else "never"))
    print(f"signups attempted {len(attempted)} ({', '.join(f'{k} {n}' for k, n in sorted(signup_kinds.items()))}); "
          f"accepted {len(results['accepted'])}; able to sign in afterwards "
          f"{len(results['accepted']) - len(cannot_sign_in)}; fresh signup after recovery "
          f"{'ok' if fresh_ok else 'FAILED'}")
    print(f"{drain_message}; mail files {files}; accepted signups with exactly one mail "
          f"{sum(1 for u in accepted if per_recipient[f'{u}@fault.example'] == 1)} of "
          f"{len(accepted)}; missing {len(missing)}; duplicated {len(duplicated)}; "
          f"mail for signups answered INTERNAL (committed anyway) {len(unpromised)}")
    notes = work / "notes"
    if notes.exists():
        warnings = notes.read_text().splitlines() + warnings
    for w in warnings:
        print(f"note: {w}")
    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        print("RESULT: FAIL")
        return 1
    print("RESULT: PASS")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--url", required=True)
    run.add_argument("--work", required=True)
    run.add_argument("--run-id", default="ft")
    run.add_argument("--signup-workers", type=int, default=3)
    run.add_argument("--me-workers", type=int, default=2)
    drain = sub.add_parser("drain")
    drain.add_argument("--url", required=True)
    drain.add_argument("--timeout", type=float, default=15)
    trigger = sub.add_parser("trigger")
    trigger.add_argument("--mail-dir", required=True)
    trigger.add_argument("--pid-file", required=True)
    trigger.add_argument("--events", required=True)
    trigger.add_argument("--timeout", type=float, default=3)
    verify = sub.add_parser("verify")
    verify.add_argument("--url", required=True)
    verify.add_argument("--work", required=True)
    verify.add_argument("--mail-dir", required=True)
    verify.add_argument("--run-id", default="ft")
    verify.add_argument("--drain-timeout", type=float, default=15)
    args = parser.parse_args()
    return {"run": cmd_run, "drain": cmd_drain, "trigger": cmd_trigger,
            "verify": cmd_verify}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
