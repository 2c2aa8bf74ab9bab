package contract

import (
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/demarche/demarche/pkg/jsonschema"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// schemaReplyMessages are the AsyncAPI messages demarche.schema.get answers,
// by name, one per format: standard encodings, each with its content type.
func schemaReplyMessages(schemas *jsonschema.Set) map[string]any {
	set := schemas.Message((&descriptorpb.FileDescriptorSet{}).ProtoReflect().Descriptor())
	headers := func(format string) map[string]any {
		return map[string]any{"type": "object", "required": []any{"Content-Type", HeaderMessage},
			"properties": map[string]any{
				"Content-Type": map[string]any{"type": "string", "const": demarchev1.SchemaContentTypes[format], "description": "the answer's encoding"},
				HeaderMessage:  map[string]any{"type": "string", "description": "the message the name resolved to, e.g. demarche.v1.StageEntered: find it in the descriptor set by this name"},
				HeaderCEType:   map[string]any{"type": "string", "description": "its ce-type, when the message is published as an event"},
			}}
	}
	const onFailure = " On failure the reply has no body but the headers Nats-Service-Error-Code (400: an unknown format, the reason names the allowed ones; 404: an unknown name, the reason lists what may be asked) and Nats-Service-Error."
	return map[string]any{
		"descriptorJson": map[string]any{
			"name": "FileDescriptorSetJSON", "title": "google.protobuf.FileDescriptorSet (protobuf JSON)",
			"summary":     "format descriptor-json (the default): the message's descriptor set in canonical protobuf JSON.",
			"description": "The google.protobuf.FileDescriptorSet of the message's file and every file it imports, imports first, with comments, in canonical protobuf JSON (protojson; @bufbuild/protobuf fromJson(FileDescriptorSetSchema, …); JsonFormat in Java). Build a registry from it (protodesc.NewFiles, createFileRegistry) and decode an event's binary body with the message named in ce-dataschema." + onFailure,
			"contentType": demarchev1.SchemaContentTypes[demarchev1.SchemaFormatDescriptorJSON],
			"headers":     headers(demarchev1.SchemaFormatDescriptorJSON),
			"payload":     set, "x-protobuf-message": "google.protobuf.FileDescriptorSet",
		},
		"descriptor": map[string]any{
			"name": "FileDescriptorSet", "title": "google.protobuf.FileDescriptorSet (binary)",
			"summary":            "format descriptor: the message's descriptor set in binary protobuf.",
			"description":        "The same google.protobuf.FileDescriptorSet in binary protobuf: what `protoc --descriptor_set_out --include_imports` writes (proto.Unmarshal, fromBinary(FileDescriptorSetSchema, …), FileDescriptorSet.parseFrom)." + onFailure,
			"contentType":        demarchev1.SchemaContentTypes[demarchev1.SchemaFormatDescriptor],
			"headers":            headers(demarchev1.SchemaFormatDescriptor),
			"payload":            map[string]any{"type": "string", "contentMediaType": demarchev1.SchemaContentTypes[demarchev1.SchemaFormatDescriptor], "description": "binary google.protobuf.FileDescriptorSet"},
			"x-protobuf-message": "google.protobuf.FileDescriptorSet",
		},
		"jsonSchema": map[string]any{
			"name": "JSONSchema", "title": "JSON Schema (2020-12)",
			"summary":     "format jsonschema: a JSON Schema of the message's protobuf JSON form.",
			"description": "A standalone JSON Schema (2020-12) of the message's protobuf JSON form (enums by their full names, 64-bit integers as strings, timestamps in RFC 3339), every type it uses under $defs; $id is the message's ce-dataschema." + onFailure,
			"contentType": demarchev1.SchemaContentTypes[demarchev1.SchemaFormatJSONSchema],
			"headers":     headers(demarchev1.SchemaFormatJSONSchema),
			"payload": map[string]any{"type": "object", "required": []any{"$schema", "$ref", "$defs"},
				"properties": map[string]any{
					"$schema": map[string]any{"type": "string", "const": "https://json-schema.org/draft/2020-12/schema"},
					"$id":     map[string]any{"type": "string", "description": "the message's ce-dataschema"},
					"$ref":    map[string]any{"type": "string", "description": "#/$defs/<the message's full name>"},
					"$defs":   map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "object"}},
				}},
		},
	}
}
