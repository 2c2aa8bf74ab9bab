// Package schemacheck decodes an event with a schema answer of the schema
// service (demarche.schema.get, GET /v1/schemas/{name}) the way a partner's
// generic library would, with standard decoders only: protodesc and dynamicpb
// for a FileDescriptorSet (binary or protobuf JSON), a JSON Schema 2020-12
// validator for a JSON Schema. The schema service's and the gateway's tests
// use it for every event type.
package schemacheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Check decodes wire, an event's binary protobuf body, with schema, an
// answer in format whose Content-Type was contentType and which names
// message (the Demarche-Schema-Message header), and checks the result equals
// want (the message that was encoded). For a JSON Schema it validates want's
// protobuf JSON (as protojson writes it, and with every field written) and
// checks the schema refuses a field it does not know.
func Check(format, contentType string, schema []byte, message string, wire []byte, want proto.Message) error {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != demarchev1.SchemaContentTypes[format] {
		return fmt.Errorf("format %s: Content-Type %q, want %s", format, contentType, demarchev1.SchemaContentTypes[format])
	}
	if message != string(want.ProtoReflect().Descriptor().FullName()) {
		return fmt.Errorf("format %s: the answer names %q, want %s", format, message, want.ProtoReflect().Descriptor().FullName())
	}
	set := &descriptorpb.FileDescriptorSet{}
	switch format {
	case demarchev1.SchemaFormatDescriptor:
		if err := proto.Unmarshal(schema, set); err != nil {
			return fmt.Errorf("binary FileDescriptorSet: %w", err)
		}
	case demarchev1.SchemaFormatDescriptorJSON:
		if err := protojson.Unmarshal(schema, set); err != nil {
			return fmt.Errorf("protobuf JSON FileDescriptorSet: %w", err)
		}
	case demarchev1.SchemaFormatJSONSchema:
		return checkJSONSchema(schema, want)
	default:
		return fmt.Errorf("unknown format %q", format)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return fmt.Errorf("format %s: the set does not build a registry: %w", format, err)
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(message))
	if err != nil {
		return fmt.Errorf("format %s: %s not in the set: %w", format, message, err)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return fmt.Errorf("format %s: %s is not a message", format, message)
	}
	got := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(wire, got); err != nil {
		return fmt.Errorf("format %s: decode the event with %s: %w", format, message, err)
	}
	if len(got.GetUnknown()) > 0 {
		return fmt.Errorf("format %s: %d bytes of the event are fields the schema does not know", format, len(got.GetUnknown()))
	}
	// The same JSON both ways: every field decoded, to the same value.
	a, err := protojson.Marshal(got)
	if err != nil {
		return err
	}
	b, err := protojson.Marshal(want)
	if err != nil {
		return err
	}
	if !jsonEqual(a, b) {
		return fmt.Errorf("format %s: decoded %s, want %s", format, a, b)
	}
	return nil
}

func checkJSONSchema(schema []byte, want proto.Message) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return fmt.Errorf("JSON Schema: not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("schema.json", doc); err != nil {
		return fmt.Errorf("JSON Schema: %w", err)
	}
	sch, err := c.Compile("schema.json")
	if err != nil {
		return fmt.Errorf("JSON Schema does not compile: %w", err)
	}
	for _, opts := range []protojson.MarshalOptions{{}, {EmitUnpopulated: true}} {
		b, err := opts.Marshal(want)
		if err != nil {
			return err
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("the event's protobuf JSON %s: %w", b, err)
		}
		if err := sch.Validate(inst); err != nil {
			return fmt.Errorf("JSON Schema refuses the event's protobuf JSON %s: %w", b, err)
		}
	}
	// A schema that accepts anything would pass the above: it must refuse a
	// field the message does not have.
	b, err := protojson.Marshal(want)
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("the event's protobuf JSON %s: %w", b, err)
	}
	obj["noSuchField"] = true
	if err := sch.Validate(obj); err == nil {
		return fmt.Errorf("JSON Schema accepts a field the message does not have")
	}
	return nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x) // re-encoding what json.Unmarshal just made cannot fail
	ya, _ := json.Marshal(y) // re-encoding what json.Unmarshal just made cannot fail
	return bytes.Equal(xa, ya)
}
