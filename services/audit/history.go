package audit

import (
	"go.temporal.io/sdk/converter"

	"github.com/demarche/demarche/workflows/trail"
)

// History is one workflow run's history (workflows/trail, the auditors'
// library, reads them).
type History = trail.History

// FetchHistories reads the histories of a crisis's workflows from Temporal.
var FetchHistories = trail.FetchHistories

var dataConverter = converter.GetDefaultDataConverter()
