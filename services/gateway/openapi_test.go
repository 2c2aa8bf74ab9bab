package gateway

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
