"""The official Python SDKs of both generations against the sandbox.

fingerprint-server-sdk (Server API v4) and fingerprint-pro-server-api-sdk (v3) call the
sandbox at the base URL given, for every endpoint the gateway uses, successes and the
errors the sandbox answers: each answer must parse into the SDK's own models (or, for
an error, into its typed exception with the parsed error code). Prints one line per
call and "python sdks: N calls ok" at the end; exits non-zero on the first surprise.

    python3 tests/sdk/python_sdks.py http://127.0.0.1:PORT SECRET_KEY
"""

import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)

import fingerprint_pro_server_api_sdk as v3  # noqa: E402
import fingerprint_server_sdk as v4  # noqa: E402

BASE, KEY = sys.argv[1], sys.argv[2]
calls = 0


def ok(name, call, check):
    global calls
    answer = call()
    assert check(answer), f"{name}: unexpected answer {answer!r}"[:2000]
    calls += 1
    print(f"ok    {name}")


def fails(name, call, exception, code):
    """The call raises `exception`, whose parsed body carries `code`."""
    global calls
    try:
        call()
    except exception as e:
        body = getattr(e, "data", None) or getattr(e, "structured_error", None)
        text = repr(body)
        assert code in text, f"{name}: error body parsed as {text}, expected code {code}"
        calls += 1
        print(f"error {name}: {type(e).__name__} {code}")
        return
    raise AssertionError(f"{name}: no {exception.__name__}")


# --- Server API v4 (fingerprint-server-sdk) ---
api4 = v4.FingerprintApi(v4.Configuration(api_key=KEY, host=BASE + "/v4", retries=0))
bad4 = v4.FingerprintApi(v4.Configuration(api_key="not-the-key", host=BASE + "/v4", retries=0))
EVENT = "1770000000000.sdkcheck"
ok("v4 get_event", lambda: api4.get_event(EVENT), lambda e: e.event_id == EVENT and e.identification is not None)
ok("v4 search_events", lambda: api4.search_events(limit=5, visitor_id="sdkV4visitorAbcdefgh"), lambda p: len(p.events) > 0)
page = api4.search_events(limit=3, visitor_id="many20sdkV4abcdefghij")
ok(
    "v4 search_events next page",
    lambda: api4.search_events(limit=3, visitor_id="many20sdkV4abcdefghij", pagination_key=page.pagination_key),
    lambda p: len(p.events) == 3 and p.events[0].event_id != page.events[0].event_id,
)
ok(
    "v4 search_events with booleans and words",
    lambda: api4.search_events(limit=10, suspect=False, vpn=True, reverse=True, bot="all", total_hits=10),
    lambda p: p.events is not None,
)
ok("v4 search_events edge source", lambda: api4.search_events(limit=5, source=["edge"]), lambda p: p.events is not None)
ok("v4 update_event", lambda: api4.update_event(EVENT, v4.EventUpdate(suspect=True, linked_id="order-1", tags={"k": "v"})), lambda r: r is None)
ok("v4 get_event after update", lambda: api4.get_event(EVENT), lambda e: e.suspect is True and e.linked_id == "order-1")
ok("v4 delete_visitor_data", lambda: api4.delete_visitor_data("sdkV4deletedAbcdefgh"), lambda r: r is None)
fails("v4 get_event unknown", lambda: api4.get_event("notfound-sdk"), v4.NotFoundException, "EVENT_NOT_FOUND")
fails("v4 delete unknown visitor", lambda: api4.delete_visitor_data("notfoundsdkvisitor12"), v4.NotFoundException, "VISITOR_NOT_FOUND")
fails("v4 get_event rate limited", lambda: api4.get_event("ratelimit-sdk"), v4.TooManyRequestsException, "TOO_MANY_REQUESTS")
fails("v4 get_event server error", lambda: api4.get_event("error500-sdk"), v4.ServiceException, "FAILED")
fails("v4 wrong key", lambda: bad4.get_event(EVENT), v4.ForbiddenException, "SECRET_API_KEY_NOT_FOUND")
fails("v4 update not ready", lambda: api4.update_event("notready-sdk", v4.EventUpdate(suspect=True)), v4.ConflictException, "STATE_NOT_READY")
fails("v4 bad search", lambda: api4.search_events(limit=5, ip_address="not-an-ip"), v4.BadRequestException, "REQUEST_CANNOT_BE_PARSED")

# --- Server API v3 (fingerprint-pro-server-api-sdk) ---
config3 = v3.Configuration(api_key=KEY)
config3.host = BASE
api3 = v3.FingerprintApi(config3)
wrong3 = v3.Configuration(api_key="not-the-key")
wrong3.host = BASE
bad3 = v3.FingerprintApi(wrong3)
Known = v3.rest.KnownApiException
ok("v3 get_event", lambda: api3.get_event(EVENT), lambda e: e.products.identification.data.request_id == EVENT)
ok("v3 get_visits", lambda: api3.get_visits("sdkV3visitorAbcdefgh", limit=3), lambda v: len(v.visits) == 3 and v.pagination_key)
first = api3.get_visits("many12sdkV3abcdefghij", limit=5)
ok(
    "v3 get_visits next page",
    lambda: api3.get_visits("many12sdkV3abcdefghij", limit=5, pagination_key=first.pagination_key),
    lambda v: len(v.visits) == 5 and v.visits[0].request_id != first.visits[0].request_id,
)
ok("v3 get_visits unknown visitor: 200 with no visits", lambda: api3.get_visits("notfoundsdkvisitor34"), lambda v: v.visits == [])
ok("v3 search_events", lambda: api3.search_events(5, visitor_id="sdkV3visitorAbcdefgh"), lambda p: len(p.events) > 0)
ok(
    "v3 search_events with Python booleans",
    lambda: api3.search_events(10, suspect=False, vpn=True, reverse=True, bot="all"),
    lambda p: p.events is not None,
)
ok("v3 update_event", lambda: api3.update_event(v3.EventsUpdateRequest(suspect=True, linked_id="order-3"), EVENT), lambda r: r is None)
ok("v3 delete_visitor_data", lambda: api3.delete_visitor_data("sdkV3deletedAbcdefgh"), lambda r: r is None)
ok("v3 get_visits of a deleted visitor: 200 with no visits", lambda: api3.get_visits("sdkV3deletedAbcdefgh"), lambda v: v.visits == [])
fails("v3 get_event unknown", lambda: api3.get_event("notfound-sdk"), Known, "RequestNotFound")
fails("v3 delete unknown visitor", lambda: api3.delete_visitor_data("notfoundsdkvisitor56"), Known, "VisitorNotFound")
fails("v3 get_visits rate limited", lambda: api3.get_visits("ratelimitsdkvisitor1"), Known, "too many requests")
fails("v3 wrong key", lambda: bad3.get_event(EVENT), Known, "TokenNotFound")
fails("v3 get_visits wrong key", lambda: bad3.get_visits("sdkV3visitorAbcdefgh"), Known, "secret API key not found")
fails("v3 update not ready", lambda: api3.update_event(v3.EventsUpdateRequest(suspect=True), "notready-sdk3"), Known, "StateNotReady")
fails("v3 bad search", lambda: api3.search_events(5, ip_address="not-an-ip"), Known, "RequestCannotBeParsed")

print(f"python sdks: {calls} calls ok")
