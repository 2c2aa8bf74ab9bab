package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/services/contract"
)

// TestSchemaRoutes: the gateway answers the contract routes by asking the
// schema service over NATS.
func TestSchemaRoutes(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	sc, err := contract.Start(context.Background(), srv.URL(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Stop()
	iss := issuer(t)
	api := httptest.NewServer(NewHandler(nc, nil, iss.Verifier(), zap.NewNop()))
	defer api.Close()
	token := mint(t, iss, "analyst", "analyst")
	get := func(path string) (int, string, []byte) {
		req, _ := http.NewRequest("GET", api.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	code, _, body := get("/v1/asyncapi.json")
	var doc map[string]any
	if code != 200 || json.Unmarshal(body, &doc) != nil || doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi: %d %.200s", code, body)
	}
	code, _, body = get("/v1/schemas/type.googleapis.com/demarche.v1.StageEntered?format=descriptor")
	set := &descriptorpb.FileDescriptorSet{}
	if code != 200 || proto.Unmarshal(body, set) != nil {
		t.Fatalf("descriptor: %d", code)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := files.FindDescriptorByName("demarche.v1.StageEntered"); err != nil {
		t.Fatal(err)
	}
	code, ct, body := get("/v1/schemas/org.demarche.crisis.stage_entered.v1?format=jsonschema")
	if code != 200 || ct != "application/schema+json" || json.Unmarshal(body, &doc) != nil || doc["$ref"] != "#/$defs/demarche.v1.StageEntered" {
		t.Fatalf("jsonschema: %d %s %.200s", code, ct, body)
	}
	code, _, body = get("/v1/schemas/demarche.v1.StageEntered")
	if code != 200 || json.Unmarshal(body, &doc) != nil || doc["dataSchema"] != "type.googleapis.com/demarche.v1.StageEntered" {
		t.Fatalf("schema: %d %.200s", code, body)
	}
	if code, _, _ = get("/v1/schemas/type.googleapis.com/demarche.v1.Nope"); code != 404 {
		t.Fatalf("unknown: %d", code)
	}
}
