// Command gendocs writes docs/asyncapi.json, docs/events.md and
// docs/openapi.json (the HTTP API, from the gateway's route table) from the
// schemas and the subject definitions in code (`make docs`, run from the
// repository root or with -dir).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/demarche/demarche/services/contract"
	"github.com/demarche/demarche/services/gateway"
)

func main() {
	dir := flag.String("dir", "docs", "folder to write into")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files, err := contract.Docs()
	if err != nil {
		return err
	}
	if files["openapi.json"], err = gateway.OpenAPIJSON(); err != nil {
		return err
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", p)
	}
	return nil
}
