package payloadcodec

import (
	"context"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Interceptors are the gRPC client interceptors that put the keyring
// between a Temporal client and its server, in the order to chain them.
//
// The first moves every failure's message and stack trace into its encoded
// attributes (a payload), so an activity's error string or an update's
// refusal is encrypted like any payload, never stored in clear; the second
// encrypts every payload going out and decrypts every payload coming back.
// Search attributes are left alone: the server must read them to index
// them, and Démarche's (stage, country, type, severity, confidentiality,
// partners) carry no title, summary or decision text.
//
// Applied at the gRPC layer rather than as the SDK's data converter, so that
// raw histories (GetWorkflowHistory, which the SDK hands back undecoded)
// arrive decrypted too: the audit trail, the evidence bundle and the
// outside-operations watcher read them with the default converter.
func Interceptors(k *Keyring) ([]grpc.UnaryClientInterceptor, error) {
	failures, err := proxy.NewFailureVisitorInterceptor(proxy.FailureVisitorInterceptorOptions{
		Outbound: &proxy.VisitFailuresOptions{Visitor: func(_ *proxy.VisitFailuresContext, f *failurepb.Failure) error {
			return encodeFailure(f)
		}},
		Inbound: &proxy.VisitFailuresOptions{Visitor: func(_ *proxy.VisitFailuresContext, f *failurepb.Failure) error {
			converter.DecodeCommonFailureAttributes(converter.GetDefaultDataConverter(), f)
			return nil
		}},
	})
	if err != nil {
		return nil, err
	}
	payloads, err := proxy.NewPayloadVisitorInterceptor(proxy.PayloadVisitorInterceptorOptions{
		Outbound: &proxy.VisitPayloadsOptions{
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				return k.Encode(ps)
			},
			SkipSearchAttributes: true,
		},
		Inbound: &proxy.VisitPayloadsOptions{
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				return k.Decode(ps)
			},
			SkipSearchAttributes: true,
		},
	})
	if err != nil {
		return nil, err
	}
	return []grpc.UnaryClientInterceptor{failures, payloads}, nil
}

// encodeFailure is converter.EncodeCommonFailureAttributes made idempotent:
// a request passed twice (retries) must not encode its failure's placeholder
// message over the real one.
func encodeFailure(f *failurepb.Failure) error {
	if f.GetEncodedAttributes() != nil {
		return nil
	}
	return converter.EncodeCommonFailureAttributes(converter.GetDefaultDataConverter(), f)
}

// KeyIDs lists the key ids of the encrypted payloads in msg (a history, a
// response), each once, in the order met.
func KeyIDs(ctx context.Context, msg proto.Message) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	err := proxy.VisitPayloads(ctx, msg, proxy.VisitPayloadsOptions{
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			for _, p := range ps {
				if id, ok := Encrypted(p); ok && !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
			return ps, nil
		},
	})
	return ids, err
}

// DecodeMessage decrypts, in place, every payload and failure of msg (a
// history exported from the cluster with the standard tooling, which holds
// ciphertext). Without k, or with a ring that lacks a key the message
// needs, it changes nothing and says which key ids are missing.
func DecodeMessage(ctx context.Context, msg proto.Message, k *Keyring) error {
	ids, err := KeyIDs(ctx, msg)
	if err != nil {
		return err
	}
	var missing []error
	for _, id := range ids {
		if !k.Has(id) {
			missing = append(missing, MissingKeyError(id, k.IDs()))
		}
	}
	if len(missing) > 0 {
		return errors.Join(missing...)
	}
	if len(ids) == 0 {
		return nil
	}
	if err := proxy.VisitPayloads(ctx, msg, proxy.VisitPayloadsOptions{
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return k.Decode(ps)
		},
	}); err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	return proxy.VisitFailures(ctx, msg, proxy.VisitFailuresOptions{Visitor: func(_ *proxy.VisitFailuresContext, f *failurepb.Failure) error {
		converter.DecodeCommonFailureAttributes(converter.GetDefaultDataConverter(), f)
		return nil
	}})
}
