package gateway

import (
	"net/http"

	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/jsonschema"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The published contract, asked of the schema service over NATS (the
// gateway imports no other service):
//
//	GET /v1/asyncapi.json                 the AsyncAPI 3 document of every subject
//	GET /v1/schemas/{ce-dataschema}       the message's schema, in a standard encoding:
//	    ?format=descriptor-json (default) google.protobuf.FileDescriptorSet in protobuf JSON (application/json)
//	    ?format=descriptor                the same set, binary (application/x-protobuf)
//	    ?format=jsonschema                a JSON Schema of the message's protobuf JSON form (application/schema+json)
//
// {ce-dataschema} may also be a message name or a ce-type. The answer's
// Demarche-Schema-Message (and Demarche-Schema-Ce-Type) headers say what it
// resolved to.

// schemaAnswerHeaders are the schema service's answer headers the route passes on.
var schemaAnswerHeaders = []string{"Content-Type", natsrpc.SchemaHeaderMessage, natsrpc.SchemaHeaderCEType}

func (s *Service) getAsyncAPI(w http.ResponseWriter, r *http.Request, _ *authn.Principal) {
	// The answer is the document itself (JSON, not a protobuf message to
	// decode): natsrpc.Request is Call's path for it (timeout, trace, the
	// service's error reply or silence as an errs sentinel).
	msg, err := natsrpc.Request(r.Context(), s.nc, natsrpc.SchemaAsyncAPI, &emptypb.Empty{})
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(msg.Data) // the client went away: no one to tell
}

func (s *Service) getSchema(w http.ResponseWriter, r *http.Request, _ *authn.Principal) {
	req := &demarchev1.GetSchemaRequest{Name: r.PathValue("name"), Format: r.URL.Query().Get("format")}
	if err := req.Validate(); err != nil { // here too, so the 400 lists the field
		writeError(w, err)
		return
	}
	reply, err := natsrpc.Request(r.Context(), s.nc, natsrpc.SchemaGet, req)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, h := range schemaAnswerHeaders {
		if v := reply.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	_, _ = w.Write(reply.Data) // the client went away: no one to tell
}

// schemaPattern is the schema route's pattern (routes.go).
const schemaPattern = "/v1/schemas/{name...}"

// schemaFormatParameter is the schema route's format query parameter in the
// OpenAPI document.
func schemaFormatParameter() map[string]any {
	var enum []any
	for _, f := range demarchev1.SchemaFormats {
		enum = append(enum, f)
	}
	return map[string]any{
		"name": "format", "in": "query", "required": false,
		"description": "the answer's encoding: descriptor-json (the default): the message's google.protobuf.FileDescriptorSet (its file and every import, imports first, with comments) in canonical protobuf JSON, application/json; " +
			"descriptor: the same set in binary protobuf, application/x-protobuf (what protoc --descriptor_set_out --include_imports writes); " +
			"jsonschema: a JSON Schema (2020-12) of the message's protobuf JSON form, application/schema+json. Any other value is refused (400, naming the field and the allowed values).",
		"schema": map[string]any{"type": "string", "enum": enum, "default": demarchev1.SchemaFormatDescriptorJSON},
	}
}

// schemaAnswers is the schema route's 200 answer in the OpenAPI document: one
// content type per format, each a standard encoding.
func schemaAnswers(standard *jsonschema.Set) map[string]any {
	set := standard.Message((&descriptorpb.FileDescriptorSet{}).ProtoReflect().Descriptor())
	headers := map[string]any{
		natsrpc.SchemaHeaderMessage: map[string]any{"description": "the message the name resolved to, e.g. demarche.v1.StageEntered: find it in the descriptor set by this name", "schema": map[string]any{"type": "string"}},
		natsrpc.SchemaHeaderCEType:  map[string]any{"description": "its ce-type, when the message is published as an event", "schema": map[string]any{"type": "string"}},
	}
	return map[string]any{
		"description": "the schema in the format asked (?format=), a standard encoding any protobuf or JSON Schema library reads",
		"headers":     headers,
		"content": map[string]any{
			demarchev1.SchemaContentTypes[demarchev1.SchemaFormatDescriptorJSON]: map[string]any{"schema": map[string]any{
				"allOf":       []any{set},
				"description": "format=descriptor-json (the default): google.protobuf.FileDescriptorSet in canonical protobuf JSON (protojson; @bufbuild/protobuf fromJson(FileDescriptorSetSchema, ...); JsonFormat in Java)",
			}},
			demarchev1.SchemaContentTypes[demarchev1.SchemaFormatDescriptor]: map[string]any{"schema": map[string]any{
				"type": "string", "contentMediaType": "application/x-protobuf",
				"description": "format=descriptor: google.protobuf.FileDescriptorSet in binary protobuf (proto.Unmarshal, fromBinary(FileDescriptorSetSchema, ...), FileDescriptorSet.parseFrom)",
			}},
			demarchev1.SchemaContentTypes[demarchev1.SchemaFormatJSONSchema]: map[string]any{"schema": map[string]any{
				"type": "object", "required": []any{"$schema", "$ref", "$defs"},
				"description": "format=jsonschema: a JSON Schema (2020-12) of the message's protobuf JSON form (enums by their full names, 64-bit integers as strings), every type it uses under $defs",
				"properties": map[string]any{
					"$schema": map[string]any{"type": "string", "const": "https://json-schema.org/draft/2020-12/schema"},
					"$id":     map[string]any{"type": "string", "description": "the message's ce-dataschema"},
					"$ref":    map[string]any{"type": "string", "description": "#/$defs/<the message's full name>"},
					"$defs":   map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "object"}},
				},
			}},
		},
	}
}
