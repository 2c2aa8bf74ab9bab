// Package repocheck holds checks of the repository itself that `make lint`
// runs: nothing built is committed (executables belong in .gitignore, not
// in git), no file outside test data grows past MaxFileSize, and the docs
// hold together (links.go: every relative link and anchor resolves, the Go
// code names only documents that exist, README.md stays a door), and
// production code imports no test-only package (imports.go: no
// net/http/httptest outside tests), and every error it throws away carries
// a comment saying why (ignored.go).
package repocheck

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxFileSize is the largest file allowed in git outside a testdata folder.
const MaxFileSize = 1 << 20

// executableMagic are the first bytes of compiled programs: ELF, Mach-O (32
// and 64 bit, both byte orders, and universal) and Windows PE.
var executableMagic = [][]byte{
	{0x7f, 'E', 'L', 'F'},
	{0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf},
	{0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe},
	{0xca, 0xfe, 0xba, 0xbe},
	{'M', 'Z'},
}

// Problems lists, for the files (paths relative to root), each that is a
// compiled program or larger than MaxFileSize outside a testdata folder.
func Problems(root string, files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f))
		info, err := os.Lstat(p)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet in a commit
			}
			return nil, err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if info.Size() > MaxFileSize && !slices.Contains(strings.Split(f, "/"), "testdata") {
			out = append(out, fmt.Sprintf("%s: %d bytes, over %d outside a testdata folder", f, info.Size(), MaxFileSize))
		}
		head, err := readHead(p, 4)
		if err != nil {
			return nil, err
		}
		for _, m := range executableMagic {
			if bytes.HasPrefix(head, m) {
				out = append(out, fmt.Sprintf("%s: a compiled program (starts % x): build output belongs in .gitignore", f, m))
				break
			}
		}
	}
	return out, nil
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return b[:k], err
}
