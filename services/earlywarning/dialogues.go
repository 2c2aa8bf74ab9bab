package earlywarning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Early-warning dialogues with regional organisations (issue 27 item 5;
// ¶66 "early warning dialogues").
//
// An analyst or a head of department records, per situation (country +
// crisis type), a dialogue held with a regional organisation of the partner
// registry: the day, what was discussed, the outcome (the assessment shared).
// `demarche warning dialogue` asks the gateway (POST
// /v1/earlywarning/dialogue, policy action situations.dialogue), which
// stamps who from the credential and asks this service's dialogue endpoint
// (the gateway alone may). The service refuses a situation without signals
// and an organisation the partner registry does not know as a regional
// organisation, each naming the field; keeps the situation's dialogues under
// its key in the EARLYWARNING_DIALOGUES bucket (compare-and-set, any number,
// oldest first); and records each on the audit trail's global chain (the
// audit service's warning-dialogue endpoint, which only this service's
// credential may ask; the record's principal is the person). The situation's
// score (warning score, the console's situation page) lists them.
//
// A dialogue's id is derived from its situation, organisation, day and
// summary: the same dialogue sent again records nothing new, and its audit
// record is sent again (the trail keeps one), so a dialogue stored whose
// record failed is completed by sending it again.

// DialoguesBucket holds each situation's early-warning dialogues: one key per
// situation (its SituationKey), the value a WarningDialogues.
const DialoguesBucket = "EARLYWARNING_DIALOGUES"

// MaxDialogues is the most dialogues kept per situation: one a week for ten
// years; past it a new one is refused (a situation that long is many).
const MaxDialogues = 520

// Sentinel errors of dialogues, matched with errors.Is (also across NATS).
var (
	// ErrUnknownOrganisation refuses an organisation the partner registry
	// does not know as a regional organisation (errs.ErrInvalid: 400).
	ErrUnknownOrganisation = errs.Sentinel("dialogue.organisation: not a regional organisation of the partner registry", errs.ErrInvalid)
	// ErrUnknownSituation refuses a dialogue about a situation without
	// signals (errs.ErrNotFound: 404).
	ErrUnknownSituation = errs.Sentinel("dialogue: no such situation", errs.ErrNotFound)
)

// dialoguesBucket is the bucket's configuration (Resources).
func dialoguesBucket(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: DialoguesBucket, Description: "Démarche early warning: each situation's early-warning dialogues with regional organisations",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicas, MaxValueSize: 4 << 20,
	}
}

// bindDialogues binds to the dialogues bucket (created where nothing
// provisioned it).
func (s *Service) bindDialogues(ctx context.Context, replicas int) (err error) {
	s.dialogues, err = natsx.KeyValue(ctx, s.js, dialoguesBucket(replicas))
	return err
}

// DialogueID is a dialogue's id: its situation, organisation, day and
// summary, hashed.
func DialogueID(d *demarchev1.WarningDialogue) string {
	h := sha256.Sum256([]byte(strings.Join([]string{demarchev1.SituationKey(d.GetCountryCode(), d.GetCrisisType()),
		strings.ToUpper(d.GetOrganisation()), d.GetDate().AsTime().UTC().Format(time.DateOnly), d.GetSummary()}, "\x00")))
	return hex.EncodeToString(h[:8])
}

// RecordDialogue records an early-warning dialogue with a regional
// organisation about a situation, and has it recorded on the audit trail.
func (s *Service) RecordDialogue(ctx context.Context, req *demarchev1.RecordDialogueRequest) (*demarchev1.RecordDialogueResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	d := proto.Clone(req.GetDialogue()).(*demarchev1.WarningDialogue)
	org, err := s.regionalOrganisation(ctx, d.GetOrganisation())
	if err != nil {
		return nil, err
	}
	d.Organisation = org
	if _, err := s.Score(ctx, d.GetCountryCode(), d.GetCrisisType()); errors.Is(err, ErrNoSituation) {
		return nil, fmt.Errorf("%w %s: no signal was ever accepted for it (dialogue.country_code and dialogue.crisis_type must name a situation with signals: the console's warnings page lists them)",
			ErrUnknownSituation, demarchev1.SituationKey(d.GetCountryCode(), d.GetCrisisType()))
	} else if err != nil {
		return nil, err
	}
	d.Date = timestamppb.New(d.GetDate().AsTime().UTC().Truncate(24 * time.Hour))
	d.Id = DialogueID(d)
	d.RecordedAt = timestamppb.New(s.config().Now().UTC())
	key := demarchev1.SituationKey(d.GetCountryCode(), d.GetCrisisType())
	for attempt := 1; ; attempt++ {
		list, rev, err := s.loadDialogues(ctx, key)
		if err != nil {
			return nil, err
		}
		if i := slices.IndexFunc(list.GetDialogues(), func(o *demarchev1.WarningDialogue) bool { return o.GetId() == d.GetId() }); i >= 0 {
			prior := list.GetDialogues()[i]
			rec, err := s.recordDialogue(ctx, prior)
			if err != nil {
				return nil, fmt.Errorf("%w: dialogue %s is recorded but the audit trail did not record it (send it again to record it): %v", ErrUnavailable, prior.GetId(), err)
			}
			return &demarchev1.RecordDialogueResponse{Dialogue: prior, Record: rec, Replayed: true}, nil
		}
		if n := len(list.GetDialogues()); n >= MaxDialogues {
			return nil, &errs.Error{Sentinel: errs.ErrInvalid, Msg: fmt.Sprintf("dialogue: situation %s has %d dialogues, the most kept (allowed: %d)", key, n, MaxDialogues)}
		}
		list.Dialogues = append(list.Dialogues, d)
		slices.SortStableFunc(list.Dialogues, func(a, b *demarchev1.WarningDialogue) int { return a.GetDate().AsTime().Compare(b.GetDate().AsTime()) })
		value, err := proto.Marshal(list)
		if err != nil {
			return nil, fmt.Errorf("encode dialogues: %w", err)
		}
		if rev == 0 {
			_, err = s.dialogues.Create(ctx, key, value)
		} else {
			_, err = s.dialogues.Update(ctx, key, value, rev)
		}
		if err != nil {
			if attempt < maxCASAttempts && (errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
				time.Sleep(time.Duration(rand.Int64N(int64(attempt) * int64(casBackoff))))
				continue
			}
			return nil, fmt.Errorf("%w: write dialogues of %s: %v", ErrUnavailable, key, err)
		}
		break
	}
	rec, err := s.recordDialogue(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("%w: dialogue %s is recorded but the audit trail did not record it (send it again to record it): %v", ErrUnavailable, d.GetId(), err)
	}
	s.log.Info("early-warning dialogue recorded", zap.String("situation", key), zap.String("organisation", d.GetOrganisation()),
		zap.String("id", d.GetId()), zap.String("recorded_by", d.GetRecordedBy()))
	return &demarchev1.RecordDialogueResponse{Dialogue: d, Record: rec}, nil
}

// loadDialogues reads a situation's dialogues and the key's revision (0: none yet).
func (s *Service) loadDialogues(ctx context.Context, key string) (*demarchev1.WarningDialogues, uint64, error) {
	e, err := s.dialogues.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &demarchev1.WarningDialogues{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: read dialogues of %s: %v", ErrUnavailable, key, err)
	}
	var list demarchev1.WarningDialogues
	if err := proto.Unmarshal(e.Value(), &list); err != nil {
		return nil, 0, fmt.Errorf("%w: decode dialogues of %s: %v", ErrUnavailable, key, err)
	}
	return &list, e.Revision(), nil
}

// withDialogues adds the situation's dialogues to its score.
func (s *Service) withDialogues(ctx context.Context, resp *demarchev1.ScoreResponse) (*demarchev1.ScoreResponse, error) {
	list, _, err := s.loadDialogues(ctx, demarchev1.SituationKey(resp.GetCountryCode(), resp.GetCrisisType()))
	if err != nil {
		return nil, err
	}
	resp.Dialogues = list.GetDialogues()
	return resp, nil
}

// regionalOrganisation is the registry's name of a regional organisation
// (matched without regard to case), asked of the partners service.
func (s *Service) regionalOrganisation(ctx context.Context, name string) (string, error) {
	var resp demarchev1.ListPartnersResponse
	if err := natsrpc.Call(ctx, s.nc, natsrpc.PartnersList, &demarchev1.ListPartnersRequest{}, &resp); err != nil {
		return "", fmt.Errorf("%w: ask the partner registry: %v", ErrUnavailable, err)
	}
	var known []string
	for _, p := range resp.GetPartners() {
		if p.GetKind() != demarchev1.PartnerKind_PARTNER_KIND_REGIONAL_ORGANISATION {
			continue
		}
		if strings.EqualFold(p.GetName(), name) {
			return p.GetName(), nil
		}
		known = append(known, p.GetName())
	}
	slices.Sort(known)
	return "", fmt.Errorf("%w: %q (allowed: %s)", ErrUnknownOrganisation, name, strings.Join(known, ", "))
}

// recordDialogue records the dialogue on the audit trail's global chain.
func (s *Service) recordDialogue(ctx context.Context, d *demarchev1.WarningDialogue) (*demarchev1.AuditRecord, error) {
	var resp demarchev1.AuditOperationResponse
	if err := natsrpc.Call(ctx, s.nc, natsrpc.AuditWarningDialogue, d, &resp); err != nil {
		return nil, err
	}
	return resp.GetRecord(), nil
}
