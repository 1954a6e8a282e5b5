"""Validates the sandbox's answers against the upstreams' own OpenAPI response schemas.

Usage: validate_responses.py FIXTURES_DIR EXCHANGES_JSON

EXCHANGES_JSON is a list of {"api": "v4"|"v3"|"stytch", "method", "path", "query",
"headers", "body", "status", "content_type", "response"} objects, as the sandbox
recorded them. Each answer must:

* validate with openapi-core against the operation's schema for its status (required
  members present, types and enum values within the spec's vocabulary);
* carry no member the schema does not declare, unless the schema allows extra members
  ("closed world": a v4-only member must not leak into a v3 answer);
* where the spec lists no schema for the status, have the shape the same generation
  gives that status on its other routes (the first route that lists it).

Prints one line per answer and exits 1 if any answer fails.
"""

import json
import sys
from pathlib import Path

import requests
from jsonschema_path import SchemaPath
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

SPECS = {
    "v4": ("fingerprint/v4/fingerprint-server-api-v4.yaml", "https://api.fpjs.io", "/v4"),
    "v3": ("fingerprint/v3/fingerprint-server-api-for-sdks.yaml", "https://api.fpjs.io", ""),
    "stytch": ("stytch/openapi_fraud_subset.json", "https://telemetry.stytch.com", ""),
}


def template_of(spec: SchemaPath, prefix: str, path: str) -> str | None:
    """The spec's path template that `path` (with the server prefix) matches."""
    path = path[len(prefix):] if prefix and path.startswith(prefix) else path
    parts = path.strip("/").split("/")
    matches = []
    for template in (spec / "paths").keys():
        t = template.strip("/").split("/")
        if len(t) == len(parts) and all(a == b or a.startswith("{") for a, b in zip(t, parts)):
            matches.append((sum(a.startswith("{") for a in t), template))
    # A literal segment wins over a parameter (`/events/search` over `/events/{id}`).
    return min(matches)[1] if matches else None


def response_schema(spec: SchemaPath, template: str, method: str, status: int):
    """The JSON schema for this status: the operation's own; where the spec is silent,
    the one the generation's other operations give this status most often; where no
    operation lists the status, the generation's most common error schema."""
    def of(tmpl, meth, code):
        responses = spec / "paths" / tmpl / meth / "responses"
        for key in (str(code), "default"):
            if key in responses.keys():
                content = responses / key
                if (
                    "content" in content.keys()
                    and "application/json" in (content / "content").keys()
                    and "schema" in (content / "content" / "application/json").keys()
                ):
                    return (tmpl, meth, key)
                return "no-body"
        return None

    own = of(template, method, status)
    if own == "no-body":
        return "no-body", "own"
    if own is not None:
        return own, "own"
    operations = [
        (tmpl, meth)
        for tmpl in (spec / "paths").keys()
        for meth in (spec / "paths" / tmpl).keys()
        if meth in ("get", "put", "post", "patch", "delete")
    ]
    def majority(codes):
        seen = {}
        for tmpl, meth in operations:
            for code in codes:
                found = of(tmpl, meth, code)
                if found not in (None, "no-body"):
                    with (spec / "paths" / tmpl / meth / "responses" / found[2] / "content" / "application/json" / "schema").open() as d:
                        shape = repr(d)
                    seen.setdefault(shape, []).append(found)
        if not seen:
            return None
        return max(seen.values(), key=len)[0]
    borrowed = majority([status]) or majority(range(400, 600))
    if borrowed is None:
        return None, "none"
    return borrowed, f"as {borrowed[1].upper()} {borrowed[0]} {borrowed[2]}"


def error_example(spec: SchemaPath):
    """The first error example the spec shows (for specs that give errors no schema)."""
    for tmpl in (spec / "paths").keys():
        for meth in (spec / "paths" / tmpl).keys():
            if meth not in ("get", "put", "post", "patch", "delete"):
                continue
            responses = spec / "paths" / tmpl / meth / "responses"
            for key in responses.keys():
                if not key.isdigit() or int(key) < 400 or "content" not in (responses / key).keys():
                    continue
                media = responses / key / "content" / "application/json"
                if "example" in media.keys():
                    return raw(media / "example")
    return None


def raw(node: SchemaPath):
    with node.open() as value:
        return value


def declared(schema: SchemaPath) -> tuple[set, object]:
    """Properties a schema declares (through allOf), and what it says of others."""
    keys = set(schema.keys())
    props = set((schema / "properties").keys()) if "properties" in keys else set()
    extra = raw(schema / "additionalProperties") if "additionalProperties" in keys else None
    if "allOf" in keys:
        for i in range(len(raw(schema / "allOf"))):
            p, e = declared(schema / "allOf" / i)
            props |= p
            extra = extra if extra is not None else e
    return props, extra


def closed(schema: SchemaPath, value, where: str, errors: list) -> None:
    """Reports members the schema does not declare (a closed-world check)."""
    keys = set(schema.keys())
    for combinator in ("oneOf", "anyOf"):
        if combinator in keys:
            branches = []
            for i in range(len(raw(schema / combinator))):
                errs: list = []
                closed(schema / combinator / i, value, where, errs)
                branches.append(errs)
            if not any(len(b) == 0 for b in branches):
                errors.extend(min(branches, key=len))
            return
    if isinstance(value, dict):
        props, extra = declared(schema)
        if not props and extra is None:
            return  # a free-form object
        for k, v in value.items():
            if k in props:
                sub = schema / "properties" / k if "properties" in keys and k in (schema / "properties").keys() else None
                if sub is None:
                    for i in range(len(raw(schema / "allOf")) if "allOf" in keys else 0):
                        branch = schema / "allOf" / i
                        if "properties" in branch.keys() and k in (branch / "properties").keys():
                            sub = branch / "properties" / k
                if sub is not None:
                    closed(sub, v, f"{where}.{k}", errors)
            elif extra is False or (extra is None and props):
                errors.append(f"{where}.{k}: not in the schema")
            elif isinstance(extra, dict):
                closed(schema / "additionalProperties", v, f"{where}.{k}", errors)
    elif isinstance(value, list) and "items" in keys:
        for i, item in enumerate(value):
            closed(schema / "items", item, f"{where}[{i}]", errors)


def main() -> int:
    fixtures = Path(sys.argv[1])
    exchanges = json.loads(Path(sys.argv[2]).read_text())
    apis, specs = {}, {}
    failures = 0
    for x in exchanges:
        spec_file, host, prefix = SPECS[x["api"]]
        if x["api"] not in apis:
            apis[x["api"]] = OpenAPI.from_file_path(str(fixtures / spec_file))
            specs[x["api"]] = SchemaPath.from_file_path(str(fixtures / spec_file))
        spec = specs[x["api"]]
        what = f"{x['api']:6} {x['method']} {x['path']} -> {x['status']}"
        problems = []
        template = template_of(spec, prefix, x["path"])
        method = x["method"].lower()
        if template is None:
            problems.append("no such route in the spec")
        else:
            found, source = response_schema(spec, template, method, x["status"])
            body = x["response"]
            example = error_example(spec) if x["status"] >= 400 and found in (None, "no-body") else None
            if example is not None:
                # The spec shows its errors by example only (Stytch): same members, same types.
                value = json.loads(body) if "json" in x["content_type"] else None
                if not isinstance(value, dict):
                    problems.append("not a JSON error object")
                else:
                    if set(value) != set(example):
                        problems.append(f"members {sorted(value)} differ from the spec's example {sorted(example)}")
                    for k, v in value.items():
                        if k in example and type(v) is not type(example[k]):
                            problems.append(f"{k}: {type(v).__name__}, the example has {type(example[k]).__name__}")
                    what += " (shape of the spec's error example)"
            elif found is None:
                problems.append(f"the spec gives no shape for {x['status']}")
            elif found == "no-body":
                pass
            elif "json" not in x["content_type"]:
                problems.append(f"content type {x['content_type']!r} is not JSON")
            else:
                tmpl, meth, key = found
                schema = spec / "paths" / tmpl / meth / "responses" / key / "content" / "application/json" / "schema"
                value = json.loads(body)
                errs: list = []
                closed(schema, value, "$", errs)
                problems.extend(errs)
                # openapi-core validates against the operation the shape comes from (the
                # answer's own, or the one borrowed), with the answer's status mapped to it.
                path = prefix + "/".join("x" if p.startswith("{") else p for p in tmpl.split("/"))
                url = host + path + ("?" + x["query"] if x["query"] and source == "own" else "")
                headers = {k: v for k, v in x["headers"] if k not in ("host", "content-length")}
                data = x["body"] if source == "own" and x["body"] else None
                prepared = requests.Request(meth.upper(), url, headers=headers, data=data).prepare()
                answer = requests.Response()
                answer.status_code = int(key) if key != "default" else x["status"]
                answer._content = body.encode()
                answer.headers["Content-Type"] = x["content_type"]
                try:
                    apis[x["api"]].validate_response(
                        RequestsOpenAPIRequest(prepared), RequestsOpenAPIResponse(answer)
                    )
                except Exception as e:  # noqa: BLE001 - every failure is reported
                    detail = "; ".join(str(s.message) for s in getattr(getattr(e, "__cause__", None), "schema_errors", []) or [])
                    problems.append(f"{type(e).__name__}: {detail or str(e)[:300]}")
                if source != "own":
                    what += f" (shape {source})"
        if problems:
            failures += 1
            print(f"FAIL  {what}: " + " | ".join(p[:400] for p in problems))
        else:
            print(f"ok    {what}")
    print(f"{len(exchanges) - failures} valid, {failures} invalid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
