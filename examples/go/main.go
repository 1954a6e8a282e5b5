// A Go client of fingerprint.gateway.v1, built from stubs that protoc-gen-go and
// protoc-gen-go-grpc generate from proto/ (no reflection). See README.md beside it.
//
// It calls GetEvent, GetVisits (two pages), SearchEvents, LookupTelemetry and ListRules,
// checks the answers, and shows how to read ErrorInfo and RetryInfo from an error.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	gatewayv1 "github.com/fingerprint-gateway/fingerprint-gateway/gen/go/fingerprint/gateway/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// details returns the ErrorInfo and RetryInfo of a failed call (either may be nil).
func details(err error) (*errdetails.ErrorInfo, *errdetails.RetryInfo) {
	var info *errdetails.ErrorInfo
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	return info, retry
}

func check(ok bool, format string, args ...interface{}) {
	if !ok {
		log.Fatalf("go example: "+format, args...)
	}
}

func main() {
	address := "localhost:50051"
	if len(os.Args) > 1 {
		address = os.Args[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, address, grpc.WithInsecure(), grpc.WithBlock())
	check(err == nil, "dial %s: %v", address, err)
	defer conn.Close()
	fp := gatewayv1.NewFingerprintServiceClient(conn)
	st := gatewayv1.NewStytchServiceClient(conn)

	got, err := fp.GetEvent(ctx, &gatewayv1.GetEventRequest{EventId: "1770000000000.go0001"})
	check(err == nil, "GetEvent: %v", err)
	check(got.GetEvent().GetEventId() == "1770000000000.go0001", "event id %q", got.GetEvent().GetEventId())
	check(len(got.GetEvent().GetIdentification().GetVisitorId()) == 20, "visitor id")

	// Two pages of a visitor's visits: the second continues exactly after the first.
	visitor := "many25goexampleabcdef"
	first, err := fp.GetVisits(ctx, &gatewayv1.GetVisitsRequest{VisitorId: visitor, PageSize: 10})
	check(err == nil, "GetVisits: %v", err)
	check(len(first.GetVisits()) == 10 && first.GetNextPageToken() != "", "first page")
	second, err := fp.GetVisits(ctx, &gatewayv1.GetVisitsRequest{
		VisitorId: visitor, PageSize: 10, PageToken: first.GetNextPageToken(),
	})
	check(err == nil, "GetVisits page 2: %v", err)
	seen := map[string]bool{}
	for _, v := range append(first.GetVisits(), second.GetVisits()...) {
		seen[v.GetEventId()] = true
	}
	check(len(seen) == 20, "no duplicate across pages: %d", len(seen))

	search, err := fp.SearchEvents(ctx, &gatewayv1.SearchEventsRequest{
		Filter:   &gatewayv1.EventFilter{VisitorId: visitor, Bot: "bad"},
		PageSize: 5,
	})
	check(err == nil, "SearchEvents: %v", err)
	check(len(search.GetEvents()) == 5, "search page")

	lookup, err := st.LookupTelemetry(ctx, &gatewayv1.LookupTelemetryRequest{
		TelemetryId:      "bot-go-example",
		ExternalMetadata: &gatewayv1.ExternalMetadata{ExternalId: strPtr("user-42")},
	})
	check(err == nil, "LookupTelemetry: %v", err)
	check(lookup.GetVerdict().GetAction() == gatewayv1.Action_ACTION_BLOCK, "verdict %v", lookup.GetVerdict())
	check(lookup.GetExternalMetadata().GetExternalId() == "user-42", "external metadata")

	rules, err := st.ListRules(ctx, &gatewayv1.ListRulesRequest{PageSize: 2})
	check(err == nil, "ListRules: %v", err)
	check(len(rules.GetRules()) == 2 && rules.GetNextPageToken() != "", "rules page")

	// Errors: the status code, then ErrorInfo (the gateway's reason) and RetryInfo.
	_, err = fp.GetEvent(ctx, &gatewayv1.GetEventRequest{EventId: "ratelimit-go"})
	check(status.Code(err) == codes.ResourceExhausted, "expected RESOURCE_EXHAUSTED, got %v", err)
	info, retry := details(err)
	check(info != nil && retry != nil, "ErrorInfo and RetryInfo present")
	// The reason is a value of the contract's ErrorReason enum.
	check(gatewayv1.ErrorReason(gatewayv1.ErrorReason_value[info.GetReason()]) == gatewayv1.ErrorReason_UPSTREAM_RATE_LIMITED,
		"reason %q", info.GetReason())
	check(info.GetDomain() == "fingerprint-gateway.internal", "domain %q", info.GetDomain())
	check(info.GetMetadata()["upstream"] == "fingerprint", "metadata %v", info.GetMetadata())
	check(retry.GetRetryDelay().GetSeconds() == 7, "retry delay %v", retry.GetRetryDelay())
	fmt.Printf("rate limited (%s); retry in %ds\n", info.GetReason(), retry.GetRetryDelay().GetSeconds())

	_, err = fp.GetEvent(ctx, &gatewayv1.GetEventRequest{EventId: "notfound-go"})
	check(status.Code(err) == codes.NotFound, "expected NOT_FOUND, got %v", err)
	info, _ = details(err)
	check(info.GetReason() == "EVENT_NOT_FOUND", "reason %q", info.GetReason())
	fmt.Println("go example: ok")
}

func strPtr(s string) *string { return &s }
