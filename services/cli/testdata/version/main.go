// Command version is the demarche CLI without the devstack module's commands
// (no Temporal server): TestVersionCommand builds it to read the version
// information of a real binary, which a test binary does not carry.
package main

import (
	"os"

	"github.com/demarche/demarche/services/cli"
)

func main() { os.Exit(cli.Execute(cli.NewRoot())) }
