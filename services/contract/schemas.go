// Package contract is Démarche's published contract for the services that
// subscribe: the AsyncAPI 3 document of every NATS subject Démarche publishes
// or serves, the event catalogue (docs/events.md), both generated from the
// schemas (with their comments, proto/demarche/v1/descriptors.binpb) and the
// subject definitions in code; and the schema service, which resolves an
// event's ce-dataschema to its descriptor set or a JSON Schema so that a
// client in any language can decode a body with nothing but the event in hand.
// Its answers are standard encodings only (demarchev1.SchemaFormats): the
// google.protobuf.FileDescriptorSet in protobuf JSON (the default) or binary,
// or a JSON Schema; never a Démarche-specific wrapper, which a generic
// protobuf library could not read.
//
//	nats req demarche.schema.get '{"name":"type.googleapis.com/demarche.v1.StageEntered","format":"descriptor"}'
//	nats req demarche.schema.asyncapi ''
//	GET /v1/schemas/type.googleapis.com/demarche.v1.StageEntered[?format=descriptor-json|descriptor|jsonschema]
//	GET /v1/asyncapi.json
//
// `make docs` regenerates docs/asyncapi.json and docs/events.md (gendocs); a
// test fails when they and the code disagree.
package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/jsonschema"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The schema micro service (`nats micro info schema`).
const (
	ServiceName     = "schema"
	ServiceVersion  = "1.0.0"
	Group           = natsrpc.SchemaGroup
	SubjectGet      = natsrpc.SchemaGet      // GetSchemaRequest -> the schema in the format asked (Answer)
	SubjectAsyncAPI = natsrpc.SchemaAsyncAPI // anything -> the AsyncAPI document (JSON)
)

// Resolve finds a message by ce-dataschema, full name or ce-type and returns
// its descriptor set (its file and every import, imports first, with
// comments) and a JSON Schema of its JSON form.
func Resolve(name string) (*demarchev1.GetSchemaResponse, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, &demarchev1.FieldError{Field: "name", Reason: "is required: a ce-dataschema (type.googleapis.com/demarche.v1.StageEntered), a message name or a ce-type"}
	}
	full := strings.TrimPrefix(name, eventbus.DataSchemaPrefix)
	ceType := ""
	if et, ok := eventbus.LookupType(name); ok {
		full, ceType = string(et.Message), et.CEType
	}
	files, err := demarchev1.SchemaFiles()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errs.ErrInternal, err)
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(full))
	md, ok := d.(protoreflect.MessageDescriptor)
	if err != nil || !ok {
		var types []string
		for _, et := range eventbus.Types() {
			types = append(types, et.CEType)
		}
		return nil, fmt.Errorf("%w: name: no message or event type %q (allowed: a ce-dataschema such as %sdemarche.v1.StageEntered, "+
			"a message name of the schemas such as demarche.v1.StageEntered, or an event's ce-type: %s)",
			errs.ErrNotFound, name, eventbus.DataSchemaPrefix, strings.Join(types, ", "))
	}
	if ceType == "" {
		for _, et := range eventbus.Types() {
			if et.Message == md.FullName() {
				ceType = et.CEType
			}
		}
	}
	js, err := json.Marshal(jsonschema.Standalone(md, eventbus.DataSchemaPrefix+string(md.FullName())))
	if err != nil {
		return nil, fmt.Errorf("%w: json schema: %v", errs.ErrInternal, err)
	}
	return &demarchev1.GetSchemaResponse{
		Message:       string(md.FullName()),
		DataSchema:    eventbus.DataSchemaPrefix + string(md.FullName()),
		CeType:        ceType,
		DescriptorSet: fileSet(md.ParentFile()),
		JsonSchema:    string(js),
	}, nil
}

// Headers of a schema answer (NATS and HTTP alike), beside Content-Type: what
// was resolved, since a request may name a ce-type or a ce-dataschema.
const (
	HeaderMessage = natsrpc.SchemaHeaderMessage // the message's full name, e.g. demarche.v1.StageEntered
	HeaderCEType  = natsrpc.SchemaHeaderCEType  // its ce-type, when it is published as an event
)

// Schema is one schema answer: Body in the format asked, and what it describes.
type Schema struct {
	Message, DataSchema, CEType string
	Format, ContentType         string
	Body                        []byte
}

// Answer resolves name (see Resolve) and encodes its schema in format
// (demarchev1.SchemaFormats; empty: descriptor-json). An unknown format is an
// errs.ErrInvalid naming the allowed ones; an unknown name errs.ErrNotFound.
func Answer(name, format string) (*Schema, error) {
	format, err := demarchev1.SchemaFormat(format)
	if err != nil {
		return nil, err
	}
	r, err := Resolve(name)
	if err != nil {
		return nil, err
	}
	out := &Schema{Message: r.GetMessage(), DataSchema: r.GetDataSchema(), CEType: r.GetCeType(), Format: format, ContentType: demarchev1.SchemaContentTypes[format]}
	switch format {
	case demarchev1.SchemaFormatDescriptor:
		out.Body, err = proto.Marshal(r.GetDescriptorSet())
	case demarchev1.SchemaFormatDescriptorJSON:
		out.Body, err = protojson.Marshal(r.GetDescriptorSet())
	case demarchev1.SchemaFormatJSONSchema:
		out.Body = []byte(r.GetJsonSchema())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: encode the schema of %s as %s: %v", errs.ErrInternal, r.GetMessage(), format, err)
	}
	return out, nil
}

// fileSet is fd and its transitive imports, each after the files it imports.
func fileSet(fd protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imps := f.Imports()
		for i := 0; i < imps.Len(); i++ {
			add(imps.Get(i).FileDescriptor)
		}
		fp := protodesc.ToFileDescriptorProto(f)
		stripExtensions(fp.ProtoReflect())
		set.File = append(set.File, fp)
	}
	add(fd)
	return set
}

// stripExtensions drops the custom options (extensions such as the decision
// forms' (demarche.v1.input), options.proto) from a published descriptor:
// they say how Démarche's own CLI and console present a field, and a generic
// decoder without them refuses their "[demarche.v1.input]" keys in protobuf
// JSON. Options left empty go too, so the published set is the schema alone.
func stripExtensions(m protoreflect.Message) {
	var exts []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsExtension():
			exts = append(exts, fd)
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				stripExtensions(v.List().Get(i).Message())
			}
		case !fd.IsMap() && fd.Message() != nil:
			stripExtensions(v.Message())
		}
		return true
	})
	for _, fd := range exts {
		m.Clear(fd)
	}
	if opts := m.Descriptor().Fields().ByName("options"); opts != nil && opts.Message() != nil && m.Has(opts) && proto.Size(m.Get(opts).Message().Interface()) == 0 {
		m.Clear(opts)
	}
}

// Service is the running schema service.
type Service struct {
	nc  *nats.Conn
	svc *natsrpc.Server
}

// Start connects to NATS and serves SubjectGet and SubjectAsyncAPI.
func Start(_ context.Context, natsURL string, log *zap.Logger) (*Service, error) {
	log = log.Named("schema")
	doc, err := AsyncAPIJSON()
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	nc, _, err := natsx.Connect(natsURL, "demarche-schema", log)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	// Raw endpoints: the answers are schemas and a document in their own
	// encodings, not protobuf messages.
	svc, err := natsrpc.Serve(nc, natsrpc.ServiceConfig{
		Name: ServiceName, Version: ServiceVersion, Group: Group, Log: log,
		Description: "Démarche schemas: resolves a ce-dataschema to its descriptor set (binary or protobuf JSON) or a JSON Schema; serves the AsyncAPI document",
	},
		natsrpc.Raw("get", "GetSchemaRequest → the message's schema in the format asked (descriptor-json, descriptor, jsonschema)",
			micro.HandlerFunc(func(r micro.Request) { answer(r, log) })),
		natsrpc.Raw("asyncapi", "anything → the AsyncAPI 3 document of every subject (JSON)",
			micro.HandlerFunc(func(r micro.Request) {
				if err := r.Respond(doc, micro.WithHeaders(micro.Headers{"Content-Type": {"application/json"}})); err != nil {
					log.Warn("AsyncAPI answer not sent", zap.Error(err))
				}
			})),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("schema: %w", err)
	}
	log.Info("schema service ready", zap.String("subjects", Group+".>"))
	return &Service{nc: nc, svc: svc}, nil
}

// answer serves one demarche.schema.get: the request is a GetSchemaRequest
// in protobuf JSON (binary when its Content-Type is application/protobuf);
// the answer's body is the schema in the format asked, its Content-Type the
// format's, and HeaderMessage / HeaderCEType say what was resolved. Errors
// come in the micro error headers, like every Démarche service's.
func answer(r micro.Request, log *zap.Logger) {
	fail := func(err error) {
		code := errs.Code(err)
		if code == errs.Code(errs.ErrInternal) {
			log.Warn("schema request failed", zap.Error(err))
		}
		if rerr := r.Error(code, err.Error(), nil); rerr != nil {
			log.Warn("schema error answer not sent", zap.Error(rerr))
		}
	}
	req := &demarchev1.GetSchemaRequest{}
	if len(r.Data()) > 0 {
		var err error
		if r.Headers().Get("Content-Type") == natsrpc.ContentTypeProtobuf {
			err = proto.Unmarshal(r.Data(), req)
		} else {
			err = protojson.Unmarshal(r.Data(), req)
		}
		if err != nil {
			fail(&errs.Error{Sentinel: errs.ErrInvalid, Msg: fmt.Sprintf("undecodable request: want a demarche.v1.GetSchemaRequest, e.g. {\"name\": \"%sdemarche.v1.StageEntered\", \"format\": \"descriptor\"}: %v", eventbus.DataSchemaPrefix, err)})
			return
		}
	}
	s, err := Answer(req.GetName(), req.GetFormat())
	if err != nil {
		fail(err)
		return
	}
	h := micro.Headers{"Content-Type": {s.ContentType}, HeaderMessage: {s.Message}}
	if s.CEType != "" {
		h[HeaderCEType] = []string{s.CEType}
	}
	if err := r.Respond(s.Body, micro.WithHeaders(h)); err != nil {
		log.Warn("respond", zap.Error(err))
	}
}

// Stop stops serving and disconnects.
func (s *Service) Stop() {
	s.svc.Stop()
	s.nc.Close()
}
