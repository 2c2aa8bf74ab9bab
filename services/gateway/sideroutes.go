package gateway

// Confidentiality on the side routes. Answers that name crises without
// being a crisis route (roster bookings, fund ledgers, situation scores,
// the crises signals opened or fed, audit heads) are cut to what the reader may see, by the rule the crisis
// routes use (authz.CanSee: clearance, or sharing for a partner), and each
// restricted or confidential crisis left in an answer is recorded as read in
// its audit chain (demarche.audit.read, as visibleState does) before the
// answer leaves: no record, no read. A crisis id that names no crisis known
// to Temporal (never opened, or forged into a ledger) counts as
// confidential.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// crisisMark is what the side routes need to know of a crisis.
type crisisMark struct {
	conf   demarchev1.Confidentiality
	shared []string
	lead   string // the lead field presence
}

// unknownCrisis is the mark of a crisis id no workflow answers for.
var unknownCrisis = crisisMark{conf: demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL}

// crisisMarks looks crises up by id: in Temporal visibility (open and
// closed alike, a query per 50 ids), or through the crisis-state stand-in of
// a test (WithCrisisStates). Ids it does not find are absent.
func (s *Service) crisisMarks(ctx context.Context, ids []string) (map[string]crisisMark, error) {
	out := map[string]crisisMark{}
	if s.states != nil || s.tc == nil {
		if s.states == nil {
			return out, nil
		}
		for _, id := range ids {
			st, err := s.states(ctx, id)
			if errors.Is(err, errs.ErrNotFound) {
				continue
			} else if err != nil {
				return nil, err
			}
			out[id] = crisisMark{conf: st.GetCrisis().GetConfidentiality(), shared: st.GetCrisis().GetSharedWith(), lead: st.GetCrisis().GetLeadPresence()}
		}
		return out, nil
	}
	dc := converter.GetDefaultDataConverter()
	for len(ids) > 0 {
		n := min(len(ids), 50)
		quoted := make([]string, n)
		for i, id := range ids[:n] {
			quoted[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(crisis.WorkflowID(id)) + "'"
		}
		ids = ids[n:]
		q := fmt.Sprintf("WorkflowType = '%s' AND WorkflowId IN (%s)", crisis.WorkflowName, strings.Join(quoted, ", "))
		var token []byte
		for {
			resp, err := s.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token, PageSize: 100})
			if err != nil {
				return nil, fmt.Errorf("%w: look up crises' confidentiality: %v", errs.ErrUnavailable, err)
			}
			for _, e := range resp.GetExecutions() {
				fields := e.GetSearchAttributes().GetIndexedFields()
				var slug string
				var shared []string
				var lead string
				if p, ok := fields[temporalx.SAConfidentiality.GetName()]; ok {
					_ = dc.FromPayload(p, &slug) // undecodable: the slug stays empty and the crisis reads as unknown (confidential), the safe side
				}
				if p, ok := fields[temporalx.SASharedWith.GetName()]; ok {
					_ = dc.FromPayload(p, &shared) // undecodable: shared with no one, the safe side
				}
				if p, ok := fields[temporalx.SALeadPresence.GetName()]; ok {
					_ = dc.FromPayload(p, &lead) // undecodable: led by no presence, the safe side (no field officer sees it)
				}
				m := unknownCrisis
				if c, err := demarchev1.ParseConfidentiality(slug); err == nil && c != demarchev1.Confidentiality_CONFIDENTIALITY_UNSPECIFIED {
					m = crisisMark{conf: c, shared: shared, lead: lead}
				}
				// Several runs of one id (none since ids are never reused):
				// the most restrictive wins.
				if prev, ok := out[crisis.CrisisIDOf(e.GetExecution().GetWorkflowId())]; ok && prev.conf > m.conf {
					m = prev
				}
				out[crisis.CrisisIDOf(e.GetExecution().GetWorkflowId())] = m
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
	}
	return out, nil
}

// readable is the set of the crises named by ids that p may see; each
// restricted or confidential one is recorded as read (detail says where) in
// its audit chain first. An error means nothing may be answered.
func (s *Service) readable(r *http.Request, p *authn.Principal, ids []string, detail string) (map[string]bool, error) {
	var uniq []string
	for _, id := range ids {
		if id != "" && !slices.Contains(uniq, id) {
			uniq = append(uniq, id)
		}
	}
	ok := map[string]bool{}
	if len(uniq) == 0 {
		return ok, nil
	}
	marks, err := s.crisisMarks(r.Context(), uniq)
	if err != nil {
		return nil, err
	}
	var record []string
	for _, id := range uniq {
		m, known := marks[id]
		if !known {
			m = unknownCrisis
		}
		if !authz.CanSee(p, m.conf, m.shared, m.lead) {
			continue
		}
		ok[id] = true
		if m.conf != demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC {
			record = append(record, id)
		}
	}
	if err := s.recordReads(r.Context(), p, record, detail); err != nil {
		return nil, err
	}
	return ok, nil
}

// recordReads records p's read of each crisis (four at a time).
func (s *Service) recordReads(ctx context.Context, p *authn.Principal, ids []string, detail string) error {
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := natsrpc.Call(ctx, s.nc, natsrpc.AuditRead, &demarchev1.AuditReadRequest{Reader: p.Subject, CrisisId: id, Detail: detail}, &demarchev1.AuditReadResponse{})
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%w: the read of crisis %s could not be recorded in the audit trail; retry: %v", errs.ErrUnavailable, id, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// cutToReadable removes from a side route's answer what names a crisis the
// principal may not see, and records the reads of what it keeps. It answers
// an error when the answer cannot be cut (then nothing is sent).
func (s *Service) cutToReadable(r *http.Request, p *authn.Principal, resp proto.Message) error {
	detail := r.Method + " " + r.URL.Path
	switch m := resp.(type) {
	case *demarchev1.AssignmentsResponse:
		var ids []string
		for _, a := range m.GetAssignments() {
			ids = append(ids, a.GetCrisisId())
		}
		ok, err := s.readable(r, p, ids, detail)
		if err != nil {
			return err
		}
		m.Assignments = slices.DeleteFunc(m.Assignments, func(a *demarchev1.Assignment) bool { return !ok[a.GetCrisisId()] })
	case *demarchev1.LedgerResponse:
		var ids []string
		for _, e := range m.GetEntries() {
			ids = append(ids, e.GetCrisisId())
			for id := range e.GetCrisisTotalsUsd() {
				ids = append(ids, id)
			}
		}
		ok, err := s.readable(r, p, ids, detail)
		if err != nil {
			return err
		}
		// A line of a hidden crisis is left out whole (its crisis, request,
		// key and amount); the lines kept keep their numbers, so a gap shows
		// that the ledger has lines this reader is not cleared for. The
		// per-crisis totals name the visible crises only.
		m.Entries = slices.DeleteFunc(m.Entries, func(e *demarchev1.LedgerEntry) bool { return e.GetCrisisId() != "" && !ok[e.GetCrisisId()] })
		for _, e := range m.Entries {
			for id := range e.CrisisTotalsUsd {
				if !ok[id] {
					delete(e.CrisisTotalsUsd, id)
				}
			}
		}
	case *demarchev1.ScoreResponse:
		ids := []string{m.GetCrisisId(), m.GetPreviousCrisisId()}
		for _, pt := range m.GetHistory() {
			ids = append(ids, pt.GetCrisisId())
		}
		ok, err := s.readable(r, p, ids, detail)
		if err != nil {
			return err
		}
		if !ok[m.GetCrisisId()] {
			// Whether a crisis the reader may not see is closed is its to keep.
			m.CrisisId, m.CrisisClosed, m.NextEpisodeScore = "", false, 0
		}
		if !ok[m.GetPreviousCrisisId()] {
			m.PreviousCrisisId = ""
		}
		for _, pt := range m.GetHistory() {
			if !ok[pt.GetCrisisId()] {
				pt.CrisisId = ""
			}
		}
	case *demarchev1.IngestResponse:
		// Signals open or feed crises whatever their sender's clearance:
		// the sender learns of those it may see only.
		var ids []string
		for _, res := range m.GetResults() {
			ids = append(ids, res.GetCrisisId())
		}
		for _, c := range m.GetCrises() {
			ids = append(ids, c.GetCrisisId())
		}
		ok, err := s.readable(r, p, ids, detail)
		if err != nil {
			return err
		}
		for _, res := range m.GetResults() {
			if res.GetCrisisId() != "" && !ok[res.GetCrisisId()] {
				res.CrisisId, res.CrisisOpened = "", false
			}
		}
		m.Crises = slices.DeleteFunc(m.Crises, func(c *demarchev1.CrisisTouch) bool { return !ok[c.GetCrisisId()] })
	case *demarchev1.AuditHeads:
		var ids []string
		for _, h := range m.GetHeads() {
			if id, isCrisis := strings.CutPrefix(h.GetChain(), "crisis."); isCrisis {
				ids = append(ids, id)
			}
		}
		// Heads are hashes, not material: the audit service records the
		// reader itself; a hidden crisis's head is left out all the same.
		marks, err := s.crisisMarks(r.Context(), ids)
		if err != nil {
			return err
		}
		m.Heads = slices.DeleteFunc(m.Heads, func(h *demarchev1.ChainHead) bool {
			id, isCrisis := strings.CutPrefix(h.GetChain(), "crisis.")
			if !isCrisis {
				return false
			}
			mk, known := marks[id]
			if !known {
				mk = unknownCrisis
			}
			return !authz.CanSee(p, mk.conf, mk.shared, mk.lead)
		})
	}
	return nil
}
