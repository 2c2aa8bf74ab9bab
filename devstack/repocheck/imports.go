package repocheck

import (
	"fmt"
	"go/parser"
	"go/token"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// TestOnlyImports are packages for tests: production code (a Go file that
// is not a _test.go file, outside a test-support package) never imports
// them. net/http/httptest in production code means a handler calling
// another handler through a fake request; the console and the API call the
// application layer (services/gateway/app) instead.
var TestOnlyImports = []string{"net/http/httptest"}

// ForbiddenImports lists, for the Go files (paths relative to root), each
// production file that imports a package of TestOnlyImports. Test files
// (_test.go) and test-support packages (a folder named like httptest:
// ending in "test", e.g. pkg/natstest, pkg/authn/oidctest) may.
func ForbiddenImports(root string, files []string) ([]string, error) {
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if !strings.HasSuffix(f, ".go") || strings.HasSuffix(f, "_test.go") || strings.HasSuffix(path.Dir(f), "test") {
			continue
		}
		parsed, err := parser.ParseFile(fset, filepath.Join(root, filepath.FromSlash(f)), nil, parser.ImportsOnly)
		if err != nil {
			return nil, err
		}
		for _, imp := range parsed.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: import %s: %w", f, imp.Path.Value, err)
			}
			for _, banned := range TestOnlyImports {
				if p == banned {
					out = append(out, fmt.Sprintf("%s imports %s, which is for tests only (call the application layer, not a handler)", f, p))
				}
			}
		}
	}
	return out, nil
}
