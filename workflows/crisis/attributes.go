package crisis

import (
	"fmt"
	"slices"

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
		temporalx.SALeadPresence.ValueSet(c.GetLeadPresence()),
	}
}

// ensureCrisisAttributes upserts the crisis's attributes the start did not
// already set (crisis.Open and OpenOrSignal set them all: then nothing is
// written, saving a visibility update per opening). The lead presence is
// not compared: the start sets it with the others, and a crisis opened
// before it existed has none (comparing it would add an upsert to the
// histories of v0.1.0).
func ensureCrisisAttributes(ctx workflow.Context, c *demarchev1.Crisis) error {
	have := workflow.GetTypedSearchAttributes(ctx)
	same := func() bool {
		country, ok1 := have.GetKeyword(temporalx.SACountry)
		region, ok2 := have.GetKeyword(temporalx.SARegion)
		ctype, ok3 := have.GetKeyword(temporalx.SACrisisType)
		sev, ok4 := have.GetInt64(temporalx.SASeverity)
		conf, ok5 := have.GetKeyword(temporalx.SAConfidentiality)
		drill, ok6 := have.GetBool(temporalx.SADrill)
		shared, _ := have.GetKeywordList(temporalx.SASharedWith)
		return ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && country == c.GetCountryCode() && region == c.GetRegion().Slug() &&
			ctype == c.GetCrisisType().Slug() && sev == int64(c.GetSeverity()) && conf == c.GetConfidentiality().Slug() &&
			drill == c.GetDrill() && slices.Equal(shared, c.GetSharedWith())
	}
	if same() {
		return nil
	}
	return upsertCrisisAttributes(ctx, c)
}

func upsertCrisisAttributes(ctx workflow.Context, c *demarchev1.Crisis) error {
	if err := workflow.UpsertTypedSearchAttributes(ctx, crisisAttributes(c)...); err != nil {
		return fmt.Errorf("search attributes: %w", err)
	}
	return nil
}

// stageAttributes are the search attributes of the stage(s) the crisis is in.
func (l *lifecycle) stageAttributes(current demarchev1.Stage) []temporal.SearchAttributeUpdate {
	running := []string{}
	for _, r := range l.active {
		if r.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			running = append(running, r.rec.GetStage().Slug())
		}
	}
	return []temporal.SearchAttributeUpdate{
		temporalx.SAStage.ValueSet(current.Slug()),
		temporalx.SAActiveStages.ValueSet(running),
	}
}
