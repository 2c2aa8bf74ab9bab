// Package contract is Démarche's published contract for the services that
// subscribe: the AsyncAPI 3 document of every NATS subject Démarche publishes
// or serves, the event catalogue (docs/events.md), both generated from the
// schemas (with their comments, proto/demarche/v1/descriptors.binpb) and the
// subject definitions in code; and the schema service, which resolves an
// event's ce-dataschema to its descriptor set and a JSON Schema so that a
// client in any language can decode a body with nothing but the event in hand.
//
//	nats req demarche.schema.get '{"name":"type.googleapis.com/demarche.v1.StageEntered"}'
//	nats req demarche.schema.asyncapi ''
//	GET /v1/schemas/type.googleapis.com/demarche.v1.StageEntered[?format=descriptor|jsonschema]
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
	SubjectGet      = natsrpc.SchemaGet      // GetSchemaRequest -> GetSchemaResponse
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
		return nil, fmt.Errorf("%w: no message %q (ask with a ce-dataschema such as %sdemarche.v1.StageEntered, a message name or a ce-type)", errs.ErrNotFound, name, eventbus.DataSchemaPrefix)
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
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(fd)
	return set
}

// Service is the running schema service.
type Service struct {
	nc  *nats.Conn
	svc micro.Service
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
	svc, err := micro.AddService(nc, micro.Config{
		Name: ServiceName, Version: ServiceVersion,
		Description: "Démarche schemas: resolves a ce-dataschema to its descriptor set and JSON Schema; serves the AsyncAPI document",
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("schema: micro service: %w", err)
	}
	g := svc.AddGroup(Group)
	get := natsrpc.Handler(func() *demarchev1.GetSchemaRequest { return &demarchev1.GetSchemaRequest{} },
		func(_ context.Context, r *demarchev1.GetSchemaRequest) (*demarchev1.GetSchemaResponse, error) {
			return Resolve(r.GetName())
		},
		natsrpc.WithLog(log))
	asyncapi := natsrpc.Observed(micro.HandlerFunc(func(r micro.Request) {
		_ = r.Respond(doc, micro.WithHeaders(micro.Headers{"Content-Type": {"application/json"}}))
	}))
	for _, ep := range []struct {
		name string
		h    micro.Handler
	}{{"get", get}, {"asyncapi", asyncapi}} {
		if err := g.AddEndpoint(ep.name, ep.h); err != nil {
			_ = svc.Stop()
			nc.Close()
			return nil, fmt.Errorf("schema: endpoint %s: %w", ep.name, err)
		}
	}
	if err := natsrpc.Ready(nc, svc); err != nil {
		_ = svc.Stop()
		nc.Close()
		return nil, fmt.Errorf("schema: %w", err)
	}
	log.Info("schema service ready", zap.String("subjects", Group+".>"))
	return &Service{nc: nc, svc: svc}, nil
}

// Stop stops serving and disconnects.
func (s *Service) Stop() {
	_ = s.svc.Stop()
	s.nc.Close()
}
