"""Schemathesis checks for Custos.

Expected refusals are GraphQL errors with a contract code (UNAUTHENTICATED,
BAD_USER_INPUT, ...), so schemathesis' own "server error" check, which flags
every resolver error, does not fit. What must never happen is a 5xx answer,
a body that is not JSON, or an INTERNAL error: that is what this check fails on.
"""

import schemathesis


@schemathesis.check
def no_crash_or_internal_error(ctx, response, case):
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise AssertionError("the answer is not JSON")
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code is None:
            raise AssertionError(f"an error without a contract code: {error.get('message')!r}")
        if code == "INTERNAL":
            raise AssertionError(f"INTERNAL error (request {error['extensions'].get('requestId')})")
