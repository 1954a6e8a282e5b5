"""A Python client of fingerprint.gateway.v1, built from stubs that grpcio-tools
generates from proto/ (no reflection).

    cargo run -- --sandbox                          # in one terminal
    cd examples/python
    python3 -m pip install -r requirements.txt
    ./generate.sh && python3 client.py localhost:50051

It calls GetEvent, GetVisits (two pages), SearchEvents, LookupTelemetry and ListRules,
checks the answers, and shows how to read ErrorInfo and RetryInfo from an error.
"""

import os
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

from fingerprint.gateway.v1 import (  # noqa: E402  (generated into gen/)
    error_reason_pb2,
    fingerprint_pb2,
    fingerprint_pb2_grpc,
    stytch_pb2,
    stytch_pb2_grpc,
)


def error_details(err: grpc.RpcError):
    """The ErrorInfo and RetryInfo of a failed call (either may be None)."""
    info, retry = None, None
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    return info, retry


def main() -> int:
    address = sys.argv[1] if len(sys.argv) > 1 else "localhost:50051"
    with grpc.insecure_channel(address) as channel:
        fp = fingerprint_pb2_grpc.FingerprintServiceStub(channel)
        st = stytch_pb2_grpc.StytchServiceStub(channel)

        got = fp.GetEvent(fingerprint_pb2.GetEventRequest(event_id="1770000000000.py0001"), timeout=10)
        assert got.event.event_id == "1770000000000.py0001", got
        assert len(got.event.identification.visitor_id) == 20

        # Two pages of a visitor's visits: the second continues exactly after the first.
        visitor = "many25pyexampleabcde"
        first = fp.GetVisits(fingerprint_pb2.GetVisitsRequest(visitor_id=visitor, page_size=10), timeout=10)
        assert len(first.visits) == 10 and first.next_page_token
        second = fp.GetVisits(
            fingerprint_pb2.GetVisitsRequest(visitor_id=visitor, page_size=10, page_token=first.next_page_token),
            timeout=10,
        )
        ids = {v.event_id for v in list(first.visits) + list(second.visits)}
        assert len(ids) == 20, "no duplicate across pages"

        search = fp.SearchEvents(
            fingerprint_pb2.SearchEventsRequest(
                filter=fingerprint_pb2.EventFilter(visitor_id=visitor, bot="bad"), page_size=5
            ),
            timeout=10,
        )
        assert len(search.events) == 5

        lookup = st.LookupTelemetry(
            stytch_pb2.LookupTelemetryRequest(
                telemetry_id="bot-python-example",
                external_metadata=stytch_pb2.ExternalMetadata(external_id="user-42"),
            ),
            timeout=10,
        )
        assert lookup.verdict.action == stytch_pb2.ACTION_BLOCK, lookup.verdict
        assert lookup.external_metadata.external_id == "user-42"

        rules = st.ListRules(stytch_pb2.ListRulesRequest(page_size=2), timeout=10)
        assert len(rules.rules) == 2 and rules.next_page_token

        # Errors: the status code, then ErrorInfo (the gateway's reason) and RetryInfo.
        try:
            fp.GetEvent(fingerprint_pb2.GetEventRequest(event_id="ratelimit-python"), timeout=10)
            raise AssertionError("expected RESOURCE_EXHAUSTED")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
            info, retry = error_details(err)
            # The reason is a value of the contract's ErrorReason enum.
            assert error_reason_pb2.ErrorReason.Value(info.reason) == error_reason_pb2.UPSTREAM_RATE_LIMITED
            assert info.domain == "fingerprint-gateway.internal"
            assert info.metadata["upstream"] == "fingerprint"
            assert retry.retry_delay.seconds == 7
            print(f"rate limited ({info.reason}); retry in {retry.retry_delay.seconds}s")
        try:
            fp.GetEvent(fingerprint_pb2.GetEventRequest(event_id="notfound-python"), timeout=10)
            raise AssertionError("expected NOT_FOUND")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert error_details(err)[0].reason == "EVENT_NOT_FOUND"
    print("python example: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
