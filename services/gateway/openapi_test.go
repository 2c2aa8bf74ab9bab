package gateway

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/demarche/demarche/services/contract"
)

// The committed docs/openapi.json is what the route table says today, and
// every route is in it.
func TestOpenAPICurrent(t *testing.T) {
	want, err := OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/openapi.json is out of date: run 'make docs'")
	}
	paths := OpenAPI()["paths"].(map[string]any)
	for _, rt := range Routes() {
		p := strings.ReplaceAll(rt.Pattern, "...", "")
		if _, ok := paths[p].(map[string]any)[strings.ToLower(rt.Method)]; !ok {
			t.Errorf("%s %s is not in the OpenAPI document", rt.Method, rt.Pattern)
		}
	}
}

// Both contract documents name the same contact (the gateway keeps its own
// copy so as not to import services/contract and every service with it).
func TestOpenAPIContactIsAsyncAPIs(t *testing.T) {
	info := OpenAPI()["info"].(map[string]any)
	if got, want := info["contact"], contract.Contact(); !reflect.DeepEqual(got, want) {
		t.Fatalf("docs/openapi.json's contact is %v, docs/asyncapi.json's %v: change openAPIContact and contract.Contact together", got, want)
	}
}
