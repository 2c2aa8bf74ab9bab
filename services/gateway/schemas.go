package gateway

import (
	"encoding/json"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/services/contract"
)

// schemaRoutes serves the published contract (services/contract):
//
//	GET /v1/asyncapi.json                 the AsyncAPI 3 document of every subject
//	GET /v1/schemas/{ce-dataschema}       demarche.v1.GetSchemaResponse (descriptor set + JSON Schema)
//	    ?format=descriptor                the google.protobuf.FileDescriptorSet, binary (application/x-protobuf)
//	    ?format=jsonschema                the JSON Schema alone
//
// {ce-dataschema} may also be a message name or a ce-type. No state, no backend:
// the schemas are compiled in, as in the schema service on NATS.
func (s *Service) schemaRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/asyncapi.json", func(w http.ResponseWriter, _ *http.Request) {
		doc, err := contract.AsyncAPIJSON()
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	mux.HandleFunc("GET /v1/schemas/{name...}", func(w http.ResponseWriter, r *http.Request) {
		resp, err := contract.Resolve(r.PathValue("name"))
		if err != nil {
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
			writeProto(w, http.StatusOK, resp)
		}
	})
}
