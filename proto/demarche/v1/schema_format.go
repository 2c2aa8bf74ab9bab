package demarchev1

import (
	"fmt"
	"strings"
)

// The schema service's answer encodings (GetSchemaRequest.format, and the
// format query parameter of GET /v1/schemas/{name}): standard encodings only,
// so any protobuf or JSON Schema library reads them.
const (
	// SchemaFormatDescriptorJSON is the message's
	// google.protobuf.FileDescriptorSet in canonical protobuf JSON (what
	// protojson, @bufbuild/protobuf's toJson or protobuf's JsonFormat write).
	// The default.
	SchemaFormatDescriptorJSON = "descriptor-json"
	// SchemaFormatDescriptor is the same set in binary protobuf (what
	// `protoc --descriptor_set_out --include_imports` writes).
	SchemaFormatDescriptor = "descriptor"
	// SchemaFormatJSONSchema is a JSON Schema (2020-12) of the message's
	// protobuf JSON form.
	SchemaFormatJSONSchema = "jsonschema"
)

// SchemaFormats are the formats, the default first.
var SchemaFormats = []string{SchemaFormatDescriptorJSON, SchemaFormatDescriptor, SchemaFormatJSONSchema}

// SchemaContentTypes are each format's content type (HTTP Content-Type, and
// the Content-Type header of the NATS answer).
var SchemaContentTypes = map[string]string{
	SchemaFormatDescriptorJSON: "application/json",
	SchemaFormatDescriptor:     "application/x-protobuf",
	SchemaFormatJSONSchema:     "application/schema+json",
}

// SchemaFormat is the format a request asks for: its own, or the default
// when empty; an unknown one is a FieldError naming the allowed formats.
func SchemaFormat(format string) (string, error) {
	switch format = strings.TrimSpace(format); format {
	case "":
		return SchemaFormatDescriptorJSON, nil
	case SchemaFormatDescriptorJSON, SchemaFormatDescriptor, SchemaFormatJSONSchema:
		return format, nil
	}
	return "", &FieldError{Field: "format", Reason: fmt.Sprintf("is %q (allowed: %s; empty means %s)", format, strings.Join(SchemaFormats, ", "), SchemaFormatDescriptorJSON)}
}

// Validate checks the request's format (the name is resolved by the service,
// which names what it accepts when it finds nothing).
func (x *GetSchemaRequest) Validate() error {
	_, err := SchemaFormat(x.GetFormat())
	return err
}
