package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The published contract, asked of the schema service over NATS (the
// gateway imports no other service):
//
//	GET /v1/asyncapi.json                 the AsyncAPI 3 document of every subject
//	GET /v1/schemas/{ce-dataschema}       demarche.v1.GetSchemaResponse (descriptor set + JSON Schema)
//	    ?format=descriptor                the google.protobuf.FileDescriptorSet, binary (application/x-protobuf)
//	    ?format=jsonschema                the JSON Schema alone
//
// {ce-dataschema} may also be a message name or a ce-type.

func (s *Service) getAsyncAPI(w http.ResponseWriter, r *http.Request, _ *authn.Principal) {
	msg, err := s.nc.RequestWithContext(r.Context(), natsrpc.SchemaAsyncAPI, nil)
	if err != nil {
		writeError(w, fmt.Errorf("%w: schema service: %v", errs.ErrUnavailable, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(msg.Data)
}

func (s *Service) getSchema(w http.ResponseWriter, r *http.Request, _ *authn.Principal) {
	var resp demarchev1.GetSchemaResponse
	if err := natsrpc.Call(r.Context(), s.nc, natsrpc.SchemaGet, &demarchev1.GetSchemaRequest{Name: r.PathValue("name")}, &resp); err != nil {
		writeError(w, err)
		return
	}
	switch r.URL.Query().Get("format") {
	case "descriptor":
		b, err := proto.Marshal(resp.GetDescriptorSet())
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf; messageType=google.protobuf.FileDescriptorSet")
		_, _ = w.Write(b)
	case "jsonschema":
		w.Header().Set("Content-Type", "application/schema+json")
		_, _ = w.Write(json.RawMessage(resp.GetJsonSchema()))
	default:
		writeProto(w, http.StatusOK, &resp)
	}
}
