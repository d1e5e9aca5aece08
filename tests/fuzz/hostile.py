#!/usr/bin/env python3
"""Sends hostile inputs to every operation of schema.graphql and requires
the server to stay up.

For each query and mutation field named in the schema file (read here, not
listed by hand): values nested thousands of levels deep (lists, objects,
parentheses, selection sets) written into the query text, long strings in
every argument, and variables nested past and just under the JSON nesting
limit. After each field's batch, /healthz must answer 200. Any 5xx answer,
a non-JSON answer from /graphql, or a dropped connection fails the run.

    tests/fuzz/hostile.py http://127.0.0.1:8000 schema.graphql

Python 3 standard library only.
"""

import json
import re
import sys
import time
import urllib.error
import urllib.request

MAX_QUERY_BYTES = 16 * 1024
VALUE = "@VALUE@"
BUILTIN_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}


def strip_text(sdl):
    """The schema without descriptions, strings and comments."""
    sdl = re.sub(r'"""(?:\\"""|[^"]|"(?!""))*"""', " ", sdl)
    sdl = re.sub(r'"(?:\\.|[^"\\\n])*"', " ", sdl)
    return re.sub(r"#[^\n]*", " ", sdl)


def root_fields(sdl):
    """{'query': [(field, [(arg, type)], return_type)], 'mutation': [...]}
    for the schema's root types, and the names of its leaf types."""
    text = strip_text(sdl)
    leaves = set(BUILTIN_SCALARS)
    leaves.update(re.findall(r"\b(?:scalar|enum)\s+([A-Za-z_]\w*)", text))
    roots = {"query": "QueryRoot", "mutation": "MutationRoot"}
    schema = re.search(r"\bschema\s*\{([^}]*)\}", text)
    if schema:
        for kind, name in re.findall(r"(query|mutation)\s*:\s*([A-Za-z_]\w*)", schema.group(1)):
            roots[kind] = name
    found = {}
    for kind, type_name in roots.items():
        body = re.search(r"\btype\s+" + type_name + r"\b[^{]*\{(.*?)\}", text, re.S)
        if body:
            found[kind] = fields_of(body.group(1))
    return found, leaves


def read_type(tokens, at):
    """A type reference ([Name!]! and the like) from tokens[at:]."""
    out = ""
    depth = 0
    while at < len(tokens):
        token = tokens[at]
        if token == "[":
            depth += 1
        elif token == "]":
            depth -= 1
        elif token != "!" and out and out[-1] not in "[":
            break
        out += token
        at += 1
        if depth == 0 and not (at < len(tokens) and tokens[at] in "]!"):
            break
    return out, at


def fields_of(body):
    """[(name, [(arg, type)], return type)] of a type's field list."""
    tokens = re.findall(r"[A-Za-z_]\w*|[-\d.]+|[()\[\]!:=@{},]", body)
    fields = []
    at = 0
    while at < len(tokens):
        name = tokens[at]
        at += 1
        args = []
        if at < len(tokens) and tokens[at] == "(":
            at += 1
            while tokens[at] != ")":
                if tokens[at] == ",":
                    at += 1
                    continue
                arg = tokens[at]
                arg_type, at = read_type(tokens, at + 2)
                args.append((arg, arg_type))
                if tokens[at] == "=":
                    # A default value: skip it, brackets and all.
                    depth = 0
                    at += 1
                    while depth or tokens[at] not in (",", ")"):
                        depth += tokens[at] in "[{"
                        depth -= tokens[at] in "]}"
                        at += 1
            at += 1
        if tokens[at] == ":":
            at += 1
        returns, at = read_type(tokens, at)
        while at < len(tokens) and tokens[at] == "@":
            at += 2
            if at < len(tokens) and tokens[at] == "(":
                while tokens[at] != ")":
                    at += 1
                at += 1
        fields.append((name, args, returns))
    return fields


def selection(return_type, leaves):
    named = return_type.strip("[]!")
    return "" if named in leaves else " { __typename }"


class Client:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.sent = 0
        self.statuses = {}

    def post(self, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + "/graphql",
            data=data,
            headers={"content-type": "application/json"},
            method="POST",
        )
        self.sent += 1
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 500:
            raise SystemExit(f"FAIL: HTTP {status} for {describe(body)}: {payload[:300]!r}")
        if status != 413:
            try:
                json.loads(payload)
            except ValueError:
                raise SystemExit(f"FAIL: not JSON (HTTP {status}) for {describe(body)}: {payload[:300]!r}")
        return status

    def healthy(self):
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=10) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False


def describe(body):
    text = body.decode(errors="replace") if isinstance(body, bytes) else json.dumps(body)
    return text[:160] + ("…" if len(text) > 160 else "")


def nested(open_, inner, close, frame):
    """inner wrapped in as many levels of open/close as fit in a query."""
    room = MAX_QUERY_BYTES - len(frame.replace(VALUE, "").encode()) - len(inner.encode())
    levels = room // (len(open_) + len(close))
    return frame.replace(VALUE, open_ * levels + inner + close * levels), levels


def deep_json(levels, inner="1"):
    return "[" * levels + inner + "]" * levels


def batch(kind, field, args, returns, leaves):
    """The hostile requests for one root field."""
    keyword = "query" if kind == "query" else "mutation"
    sel = selection(returns, leaves)
    target = args[0][0] if args else "x"
    frame = keyword + " { " + field + "(" + target + ": " + VALUE + ")" + sel + " }"
    for open_, inner, close in [("[", '"a"', "]"), ("{a:", "1", "}"), ("(", "1", ")")]:
        for levels in (65, 300, 2000):
            yield {"query": frame.replace(VALUE, open_ * levels + inner + close * levels)}
        text, _ = nested(open_, inner, close, frame)
        yield {"query": text}
    # Selection sets nested as deep as the text allows, under the field.
    levels = (MAX_QUERY_BYTES - 40 - len(field)) // 3
    yield {"query": keyword + " { " + field + " " + "{a" * levels + "}" * levels + " }"}
    # Long strings (14 KB of UTF-8): written into each argument in turn,
    # and as a variable of its declared type.
    long_text = "ä" * 7000
    for name in [name for name, _ in args] or ["x"]:
        yield {"query": keyword + " { " + field + "(" + name + ': "' + long_text + '")' + sel + " }"}
    for name, arg_type in args:
        declared = f"{keyword}($v: {arg_type}) {{ {field}({name}: $v){sel} }}"
        yield {"query": declared, "variables": {"v": "x" * 60_000}}
        # Deep variables: past serde_json's limit (refused unread), and
        # just under it (read, then refused by type).
        for levels in (120, 10_000):
            body = '{"query": %s, "variables": {"v": %s}}' % (json.dumps(declared), deep_json(levels))
            yield body.encode()
        body = '{"query": %s, "variables": {"v": %s}}' % (
            json.dumps(declared),
            '{"a":' * 120 + "1" + "}" * 120,
        )
        yield body.encode()


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    base, schema_path = sys.argv[1], sys.argv[2]
    with open(schema_path, encoding="utf-8") as handle:
        roots, leaves = root_fields(handle.read())
    operations = [(kind, *field) for kind, fields in roots.items() for field in fields]
    if len(roots.get("query", [])) < 5 or len(roots.get("mutation", [])) < 5:
        raise SystemExit(f"FAIL: could not read the root fields of {schema_path}: {roots}")
    client = Client(base)
    if not client.healthy():
        raise SystemExit("FAIL: the server is not up before the run")
    started = time.monotonic()
    for kind, field, args, returns in operations:
        for body in batch(kind, field, args, returns, leaves):
            try:
                client.post(body)
            except (urllib.error.URLError, ConnectionError, OSError) as error:
                raise SystemExit(f"FAIL: {kind} {field}: connection failed ({error}) for {describe(body)}")
        if not client.healthy():
            raise SystemExit(f"FAIL: /healthz stopped answering after the batch for {kind} {field}")
    took = time.monotonic() - started
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(client.statuses.items()))
    print(
        f"hostile inputs: {len(operations)} operations, {client.sent} requests in {took:.0f} s "
        f"({statuses}); the server stayed up"
    )


if __name__ == "__main__":
    main()
