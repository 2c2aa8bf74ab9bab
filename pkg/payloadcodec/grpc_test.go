package payloadcodec_test

import (
	"context"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowservicepb "go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/payloadcodec"
)

// TestInterceptors: what a client sends leaves encrypted (an activity's
// error string too, moved into an encrypted payload), twice through the
// chain (a retry) is still one layer; what comes back is decrypted with the
// failure message restored; search attributes stay readable by the server.
func TestInterceptors(t *testing.T) {
	k := key(t, "k1")
	chain, err := payloadcodec.Interceptors(ring(t, &k))
	if err != nil {
		t.Fatal(err)
	}
	cc := &grpc.ClientConn{}
	// run passes req through the chain, as grpc would, to a server that
	// keeps what it got and answers resp.
	run := func(req, resp proto.Message, got *[]byte) {
		t.Helper()
		var call func(i int, ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error
		call = func(i int, ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			if i == len(chain) {
				b, err := proto.Marshal(req.(proto.Message))
				if err != nil {
					return err
				}
				*got = b
				if resp != nil {
					proto.Merge(reply.(proto.Message), resp)
				}
				return nil
			}
			return chain[i](ctx, method, req, reply, cc, func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
				return call(i+1, ctx, method, req, reply, cc, opts...)
			}, opts...)
		}
		reply := proto.Clone(resp)
		if reply == nil {
			reply = &workflowservicepb.RespondActivityTaskFailedResponse{}
		} else {
			proto.Reset(reply)
		}
		if err := call(0, context.Background(), "/temporal.api.workflowservice.v1.WorkflowService/X", req, reply, cc); err != nil {
			t.Fatal(err)
		}
		if resp != nil {
			proto.Reset(resp)
			proto.Merge(resp, reply)
		}
	}

	failed := &workflowservicepb.RespondActivityTaskFailedRequest{Failure: &failurepb.Failure{Message: "roster: " + secret}}
	var sent []byte
	run(failed, nil, &sent)
	if strings.Contains(string(sent), "Conakry") {
		t.Fatal("an activity's error string left in clear")
	}
	run(failed, nil, &sent) // a retry of the same request
	if err := proto.Unmarshal(sent, failed); err != nil {
		t.Fatal(err)
	}
	stored := failed.GetFailure()
	if id, ok := payloadcodec.Encrypted(stored.GetEncodedAttributes()); !ok || id != "k1" || stored.GetMessage() == "roster: "+secret {
		t.Fatalf("failure as the server gets it: %v", stored)
	}

	start := &workflowservicepb.StartWorkflowExecutionRequest{
		Input:            &commonpb.Payloads{Payloads: []*commonpb.Payload{payload(t, secret)}},
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{"DemarcheCountry": payload(t, "GN")}},
	}
	run(start, nil, &sent)
	if strings.Contains(string(sent), "Conakry") || !strings.Contains(string(sent), `"GN"`) {
		t.Fatalf("start request as sent: title in clear or search attribute unreadable: %q", sent)
	}

	// What the server sends back (a history holding both) reads in clear.
	var sentStart workflowservicepb.StartWorkflowExecutionRequest
	_ = proto.Unmarshal(sent, &sentStart)
	answer := &workflowservicepb.GetWorkflowExecutionHistoryResponse{History: &historypb.History{Events: []*historypb.HistoryEvent{
		{EventId: 1, Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{Input: sentStart.GetInput()}}},
		{EventId: 2, Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{Failure: stored}}},
	}}}
	run(&workflowservicepb.GetWorkflowExecutionHistoryRequest{}, answer, &sent)
	evs := answer.GetHistory().GetEvents()
	if got := string(evs[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0].GetData()); !strings.Contains(got, secret) {
		t.Fatalf("input read back: %q", got)
	}
	if got := evs[1].GetActivityTaskFailedEventAttributes().GetFailure().GetMessage(); got != "roster: "+secret {
		t.Fatalf("failure message read back: %q", got)
	}
}
