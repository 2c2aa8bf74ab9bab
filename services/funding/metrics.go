package funding

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// ledgerAlarms counts funds refused because their ledger is broken, missing
// or never opened (registered with the default Prometheus registry).
var ledgerAlarms = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "demarche", Subsystem: "funding", Name: "ledger_alarms_total",
	Help: "Funds refused because their ledger is broken, missing or not opened.",
}, []string{"fund", "alarm"})
