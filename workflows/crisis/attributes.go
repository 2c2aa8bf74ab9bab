package crisis

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// crisisAttributes are the search attributes that describe a crisis.
func crisisAttributes(c *demarchev1.Crisis) []temporal.SearchAttributeUpdate {
	return []temporal.SearchAttributeUpdate{
		temporalx.SACountry.ValueSet(c.GetCountryCode()),
		temporalx.SARegion.ValueSet(c.GetRegion().Slug()),
		temporalx.SACrisisType.ValueSet(c.GetCrisisType().Slug()),
		temporalx.SASeverity.ValueSet(int64(c.GetSeverity())),
		temporalx.SAConfidentiality.ValueSet(c.GetConfidentiality().Slug()),
		temporalx.SADrill.ValueSet(c.GetDrill()),
		temporalx.SASharedWith.ValueSet(append([]string{}, c.GetSharedWith()...)),
	}
}

func upsertCrisisAttributes(ctx workflow.Context, c *demarchev1.Crisis) error {
	if err := workflow.UpsertTypedSearchAttributes(ctx, crisisAttributes(c)...); err != nil {
		return fmt.Errorf("search attributes: %w", err)
	}
	return nil
}
