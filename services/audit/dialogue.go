package audit

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// WarningDialogueEventType is the event_type of the audit record of an
// early-warning dialogue with a regional organisation
// (¶66 "early warning dialogues").
const WarningDialogueEventType = "warning-dialogue"

// RecordWarningDialogue records an early-warning dialogue held with a
// regional organisation about a situation on the global chain: a record of
// kind OPERATION, event type WarningDialogueEventType, whose principal is the
// person who recorded it and whose detail names the situation, organisation,
// date, summary and outcome. NATS lets only early warning's credential ask
// (demarche.audit.warning-dialogue), and early warning takes the person from
// the gateway, which takes it from the caller's credential. Recording the
// same dialogue again stores nothing new (its event id is the dialogue's).
func (s *Store) RecordWarningDialogue(ctx context.Context, d *demarchev1.WarningDialogue) (*demarchev1.AuditOperationResponse, error) {
	switch {
	case d.GetId() == "":
		return nil, fmt.Errorf("%w: warning dialogue: id is required", errs.ErrInvalid)
	case d.GetRecordedBy() == "":
		return nil, fmt.Errorf("%w: warning dialogue: recorded_by is required (who recorded it)", errs.ErrInvalid)
	case d.GetRecordedAt() == nil || d.GetDate() == nil:
		return nil, fmt.Errorf("%w: warning dialogue: date and recorded_at are required", errs.ErrInvalid)
	case d.GetOrganisation() == "" || d.GetCountryCode() == "":
		return nil, fmt.Errorf("%w: warning dialogue: organisation and country_code are required", errs.ErrInvalid)
	}
	r := &demarchev1.AuditRecord{
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION, Chain: GlobalChain,
		EventId:   "warning-dialogue-" + d.GetId(),
		EventType: WarningDialogueEventType, EventSource: origin.EarlyWarningSource, EventTime: d.GetRecordedAt(),
		Principal: d.GetRecordedBy(), RecordedAt: timestamppb.New(s.now()),
		Detail: fmt.Sprintf("%s: early-warning dialogue with %s about situation %s, held %s; summary: %s; outcome: %s; recorded by %s at %s",
			WarningDialogueEventType, d.GetOrganisation(), demarchev1.SituationKey(d.GetCountryCode(), d.GetCrisisType()),
			d.GetDate().AsTime().UTC().Format(time.DateOnly), d.GetSummary(), d.GetOutcome(), d.GetRecordedBy(),
			d.GetRecordedAt().AsTime().UTC().Format("2006-01-02T15:04:05Z")),
	}
	rec, _, err := s.append(ctx, r)
	if err != nil {
		return nil, err
	}
	return &demarchev1.AuditOperationResponse{Record: rec}, nil
}
