"""Black-box smoke test: a Python gRPC client that knows nothing but the address.

It discovers the API through server reflection, builds request messages from the
reflected descriptors, and calls every read RPC against a gateway in sandbox mode.
Usage: smoke.py HOST:PORT
"""

import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.json_format import MessageToDict, ParseDict
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> int:
    channel = grpc.insecure_channel(sys.argv[1])
    grpc.channel_ready_future(channel).result(timeout=10)
    db = ProtoReflectionDescriptorDatabase(channel)
    services = set(db.get_services())
    for want in ("fingerprint.gateway.v1.FingerprintService", "fingerprint.gateway.v1.StytchService", "grpc.health.v1.Health"):
        assert want in services, f"{want} not in {services}"
    pool = descriptor_pool.DescriptorPool(db)

    def call(service, method, request):
        m = pool.FindServiceByName(service).FindMethodByName(method)
        req_cls = message_factory.GetMessageClass(m.input_type)
        resp_cls = message_factory.GetMessageClass(m.output_type)
        rpc = channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=lambda x: x.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )
        return rpc.with_call(ParseDict(request, req_cls()), timeout=10)

    fp = "fingerprint.gateway.v1.FingerprintService"
    st = "fingerprint.gateway.v1.StytchService"
    answer, meta = call(fp, "GetEvent", {"event_id": "1770000000000.abcdef"})
    event = MessageToDict(answer)["event"]
    assert event["eventId"] == "1770000000000.abcdef", event
    assert len(event["identification"]["visitorId"]) == 20
    assert dict(meta.trailing_metadata() or []).get("x-cache") or True
    answer, _ = call(fp, "GetVisits", {"visitor_id": "Ibk1527CUFmcnjLwIs4A9", "page_size": 3})
    assert len(answer.visits) == 3 and answer.next_page_token
    answer, _ = call(fp, "SearchEvents", {"page_size": 2, "filter": {"bot": "bad"}})
    assert len(answer.events) == 2
    answer, _ = call(st, "LookupTelemetry", {"telemetry_id": "5f1c9a9e-3b7d", "external_metadata": {"external_id": "user-1"}})
    assert answer.verdict.action_raw in ("ALLOW", "CHALLENGE", "BLOCK")
    answer, _ = call(st, "ListRules", {"page_size": 2})
    assert len(answer.rules) == 2 and answer.next_page_token
    answer, _ = call(st, "ListVerdictReasons", {})
    assert answer.verdict_reason_actions

    # Write, then read: the gateway must not answer from a stale cache.
    call(fp, "GetEvent", {"event_id": "1770000000000.write1"})
    call(fp, "UpdateEvent", {"event_id": "1770000000000.write1", "linked_id": "order-7", "suspect": False, "tags": {"k": "v"}})
    event = MessageToDict(call(fp, "GetEvent", {"event_id": "1770000000000.write1"})[0], preserving_proto_field_name=True)["event"]
    assert event["linked_id"] == "order-7" and event["suspect"] is False and event["tags"] == {"k": "v"}, event
    before = call(st, "LookupTelemetry", {"telemetry_id": "bb-rule-1"})[0]
    call(st, "SetRule", {"visitor_id": before.fingerprints.visitor_id, "action": "ACTION_BLOCK", "description": "smoke"})
    after = call(st, "LookupTelemetry", {"telemetry_id": "bb-rule-1"})[0]
    assert after.verdict.action_raw == "BLOCK" and list(after.verdict.reasons) == ["RULE_MATCH"], after.verdict

    # An error with rich details, decoded as a polyglot client would.
    try:
        call(fp, "GetEvent", {"event_id": "ratelimit-1"})
        raise AssertionError("expected RESOURCE_EXHAUSTED")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        status = next(v for k, v in e.trailing_metadata() if k == "grpc-status-details-bin")
        details = status_pb2.Status.FromString(status).details
        kinds = {d.type_url.rsplit("/", 1)[-1] for d in details}
        assert {"google.rpc.ErrorInfo", "google.rpc.RetryInfo"} <= kinds, kinds
        for d in details:
            if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                d.Unpack(info)
                assert info.retry_delay.seconds == 7
            if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                d.Unpack(info)
                assert info.reason == "UPSTREAM_RATE_LIMITED", info
                assert info.domain == "fingerprint-gateway.internal", info
                # The reason is a value of the contract's ErrorReason enum.
                reasons = pool.FindEnumTypeByName("fingerprint.gateway.v1.ErrorReason")
                assert info.reason in reasons.values_by_name, info.reason
    # A huge bad value: the status quotes a bounded prefix, so it fits grpcio's 16 KiB
    # header limit and the caller sees INVALID_ARGUMENT, not its own RESOURCE_EXHAUSTED.
    try:
        call(fp, "SearchEvents", {"filter": {"ip_address": "z" * 20000}})
        raise AssertionError("huge ip_address accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert len(e.details()) < 300, len(e.details())
    for bad in ("", "a/b", "x?y", "\u0000", "a\u202eb", "a\u200bb"):
        try:
            call(fp, "GetEvent", {"event_id": bad})
            raise AssertionError(f"{bad!r} accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, e)
    print("black-box smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
