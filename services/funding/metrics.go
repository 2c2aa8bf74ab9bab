package funding

import "github.com/demarche/demarche/pkg/metrics"

// ledgerAlarms counts funds refused because their ledger is broken, missing
// or never opened (on the registry /metrics serves, each alarm at 0 from the
// start: pkg/metrics).
var ledgerAlarms = metrics.FundingLedgerAlarms
