package repocheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every file git tracks passes: no compiled program, nothing over 1 MiB
// outside test data.
func TestNoBinariesOrLargeFilesInGit(t *testing.T) {
	out, err := exec.Command("git", "-C", "../..", "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to check", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 100 {
		t.Fatalf("git lists %d files: not the repository", len(files))
	}
	problems, err := Problems("../..", files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// A planted executable and a planted large file are each caught; a large
// file under testdata and a small text file are not.
func TestProblemsCatchPlantedFiles(t *testing.T) {
	root := t.TempDir()
	write := func(name string, b []byte) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.ReadFile(os.Args[0]) // this test binary: a real executable
	if err != nil {
		t.Fatal(err)
	}
	write("examples/subscriber/subscriber", self[:4096])
	write("docs/huge.json", make([]byte, MaxFileSize+1))
	write("workflows/crisis/testdata/big.json", make([]byte, MaxFileSize+1))
	write("README.md", []byte("# hello\n"))
	got, err := Problems(root, []string{"examples/subscriber/subscriber", "docs/huge.json", "workflows/crisis/testdata/big.json", "README.md", "gone.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "examples/subscriber/subscriber: a compiled program") || !strings.HasPrefix(got[1], "docs/huge.json: 1048577 bytes") {
		t.Fatalf("problems %q, want the executable and docs/huge.json only", got)
	}
}
