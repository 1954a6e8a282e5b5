"""Validates HTTP requests the gateway sent against the upstreams' own OpenAPI schemas.

Usage: validate_requests.py FIXTURES_DIR REQUESTS_JSON

REQUESTS_JSON is a list of {"api": "v4"|"v3"|"stytch", "method", "path", "query",
"headers": [[name, value], ...], "body"} objects, as the sandbox recorded them.
Prints one line per request and exits 1 if any request does not validate.
"""

import json
import sys
from pathlib import Path

import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

SPECS = {
    "v4": ("fingerprint/v4/fingerprint-server-api-v4.yaml", "https://api.fpjs.io"),
    "v3": ("fingerprint/v3/fingerprint-server-api-for-sdks.yaml", "https://api.fpjs.io"),
    "stytch": ("stytch/openapi_fraud_subset.json", "https://telemetry.stytch.com"),
}


def main() -> int:
    fixtures = Path(sys.argv[1])
    recorded = json.loads(Path(sys.argv[2]).read_text())
    apis = {}
    failures = 0
    for r in recorded:
        spec_file, host = SPECS[r["api"]]
        if r["api"] not in apis:
            apis[r["api"]] = OpenAPI.from_file_path(str(fixtures / spec_file))
        url = host + r["path"] + ("?" + r["query"] if r["query"] else "")
        headers = {k: v for k, v in r["headers"] if k not in ("host", "content-length")}
        prepared = requests.Request(r["method"], url, headers=headers, data=r["body"] or None).prepare()
        try:
            apis[r["api"]].validate_request(RequestsOpenAPIRequest(prepared))
            print(f"ok    {r['api']:6} {r['method']} {r['path']}?{r['query']}")
        except Exception as e:  # noqa: BLE001 - every validation failure is reported
            failures += 1
            detail = "; ".join(str(x) for x in getattr(e, "schema_errors", []) or []) or repr(e.__cause__ or e)
            print(f"FAIL  {r['api']:6} {r['method']} {r['path']}?{r['query']}: {e} {detail}")
    print(f"{len(recorded) - failures} valid, {failures} invalid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
