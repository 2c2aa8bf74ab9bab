package repocheck

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// No production Go file imports a test-only package (net/http/httptest):
// the console reaches the API's use cases through the application layer,
// never by serving a fake request to the API's handlers.
func TestNoTestOnlyImportsInProductionCode(t *testing.T) {
	files := trackedFiles(t, ".go", "*/*.go", "*/*/*.go", "*/*/*/*.go", "*/*/*/*/*.go")
	if !slices.Contains(files, "services/gateway/console.go") {
		t.Fatalf("services/gateway/console.go is not among the %d checked files", len(files))
	}
	bad, err := ForbiddenImports("../..", files)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// A planted production file importing httptest is caught; the same import
// in a test file or a test-support package is not.
func TestForbiddenImportsCatchPlantedFiles(t *testing.T) {
	root := t.TempDir()
	src := "package x\n\nimport (\n\t\"net/http\"\n\t\"net/http/httptest\"\n)\n\nvar _ = httptest.NewRecorder\nvar _ = http.StatusOK\n"
	for _, f := range []string{"svc/handler.go", "svc/handler_test.go", "pkg/footest/footest.go"} {
		p := filepath.Join(root, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bad, err := ForbiddenImports(root, []string{"svc/handler.go", "svc/handler_test.go", "pkg/footest/footest.go"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0] != "svc/handler.go imports net/http/httptest, which is for tests only (call the application layer, not a handler)" {
		t.Errorf("found %q, want the one production file", bad)
	}
}
