// Command demarche is Démarche's one binary: `demarche dev` runs the platform on
// this machine, `demarche serve NAME` runs one service, `demarche bench`
// measures it, and the other commands operate crises and read their events.
package main

import (
	"os"

	"github.com/demarche/demarche/devstack/bench"
	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/services/cli"
)

func main() {
	cli.DevPlatform = stack.SettlePlatform // admin restore settles a dev folder on the platform
	os.Exit(cli.Execute(cli.NewRoot(stack.NewDevCmd, bench.NewCmd, stack.NewTemporalServerCmd, stack.NewTemporalUICmd)))
}
