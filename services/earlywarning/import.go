package earlywarning

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// DefaultBatch is how many signals an import sends per ingest request.
const DefaultBatch = 500

// IngestFunc sends a batch of signals: IngestOver(nc) across NATS, or
// Service.Ingest in-process. It builds its request with ImportRequest, so an
// import's id (and its last request, with no signals) reach the service.
type IngestFunc func(context.Context, []*demarchev1.Signal) (*demarchev1.IngestResponse, error)

// IngestOver sends batches of signals to the earlywarning service over nc with
// natsrpc.Call (binary protobuf: an import sends many; RequestTimeout each).
func IngestOver(nc *nats.Conn) IngestFunc {
	return func(ctx context.Context, signals []*demarchev1.Signal) (*demarchev1.IngestResponse, error) {
		var resp demarchev1.IngestResponse
		if err := natsrpc.Call(ctx, nc, natsrpc.EarlyWarningIngest, ImportRequest(ctx, signals), &resp,
			natsrpc.Protobuf(), natsrpc.Timeout(RequestTimeout)); err != nil {
			return nil, err
		}
		return &resp, nil
	}
}

// ImportSummary is what an import did.
type ImportSummary struct {
	Read       int         // data rows read
	Accepted   int         // new signals
	Live       int         // accepted inside the live horizon
	Historical int         // accepted, older than the live horizon: opened and signalled nothing
	Duplicates int         // signals seen before
	Revised    int         // accepted revisions of signals seen before (same id, changed content)
	Rejected   []*RowError // rows refused by the parser or the service, in file order
	// Crises opened or signalled, in the order first touched (opened when any
	// batch opened it).
	Crises []*demarchev1.CrisisTouch
	// RulesVersion classified the rows.
	RulesVersion string
	// From and To are the first and last event times of the signals sent
	// (the file's rows are sent in event-time order); nil when none was.
	From, To *timestamppb.Timestamp
	// ImportID names the import in the requests it sent and in the summary
	// warning each crisis it fed gets at its end.
	ImportID string
	// Sorted is how many sorted chunks the file was put in order through
	// (0: it fitted in memory; else the external sort's temporary files).
	Sorted int
}

// Add records the crises of one response.
func (s *ImportSummary) Add(touched []*demarchev1.CrisisTouch) {
	for _, t := range touched {
		found := false
		for _, c := range s.Crises {
			if c.GetCrisisId() == t.GetCrisisId() {
				c.Opened = c.Opened || t.GetOpened()
				found = true
			}
		}
		if !found {
			s.Crises = append(s.Crises, &demarchev1.CrisisTouch{CrisisId: t.GetCrisisId(), Opened: t.GetOpened(), Situation: t.GetSituation()})
		}
	}
}

// ImportOptions tune an import; the zero value uses the defaults.
type ImportOptions struct {
	Batch    int            // signals per request (default DefaultBatch)
	Progress func(read int) // called while the file is read with the rows read so far
	// Sending, when set, is called after each batch sent with the signals
	// sent so far and all there are to send (the file is read whole, and
	// sorted in event time, before the first batch goes).
	Sending func(sent, total int)
	// SortChunk bounds the signals held in memory while the file is put in
	// event-time order (default SortChunk; tests make it small).
	SortChunk int
	Rules     *Rules // classification (default: the embedded rules)
	// Before, when set, is called with each batch before it is sent (an
	// exercise paces its batches in compressed event time).
	Before func(ctx context.Context, batch []*demarchev1.Signal) error
	// Source, when set, is who sends the file's signals: the importing
	// person's source (demarchev1.PersonSource), the only one a request may
	// carry for live signals. Each signal's source id then keeps the file's
	// format in front of the file's own id ("acled-GIN1001"): the provenance
	// stays with the signal, and two formats' ids never meet. A person
	// importing a file answers for it; it does not speak for ACLED or UCDP.
	Source string
}

// ImportWith reads a conflict-event file, sends its signals in batches and
// summarises. Rows the parser refuses are reported with their line and never
// sent; o.Progress, when set, is called after each batch with the rows read
// so far. A failure of a whole batch (service unreachable) stops the import;
// what was sent before stays recorded, and importing the file again is safe
// (duplicates). The file's rows are applied in
// event-time order (eventorder.go: an external sort holding at most
// SortChunk signals in memory), so a file listed in any order scores, crosses
// and dates its first signal as a sorted one does; rejections are still
// reported by line.
func ImportWith(ctx context.Context, r io.Reader, format Format, ingest IngestFunc, o ImportOptions) (*ImportSummary, error) {
	batch, progress := o.Batch, o.Progress
	if batch <= 0 {
		batch = DefaultBatch
	}
	rd, err := NewReader(r, format)
	if err != nil {
		return nil, err
	}
	rd.WithRules(o.Rules)
	sum := &ImportSummary{RulesVersion: rd.Rules().Version}
	sorter := newEventSorter(o.SortChunk)
	defer sorter.close()
	total := 0
	for {
		sig, line, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *RowError
		if errors.As(err, &rowErr) {
			sum.Read++
			sum.Rejected = append(sum.Rejected, rowErr)
			continue
		}
		if err != nil {
			return sum, err
		}
		sum.Read++
		if o.Source != "" {
			sig.SourceId = sig.GetSource() + "-" + sig.GetSourceId()
			sig.Source = o.Source
		}
		if err := sorter.add(sig, line); err != nil {
			return sum, err
		}
		total++
		if progress != nil && sum.Read%batch == 0 {
			progress(sum.Read)
		}
	}
	if progress != nil {
		progress(sum.Read)
	}
	sum.Sorted = len(sorter.runs)
	// The import's id goes with each request: the crises it feeds get one
	// summary warning at its end (importsummary.go), not one per request.
	sum.ImportID = NewSourceID()
	ctx = WithImport(ctx, sum.ImportID)
	fed := map[string]bool{}
	var sigs []*demarchev1.Signal
	var lines []int
	sent := 0
	flush := func() error {
		if len(sigs) == 0 {
			return nil
		}
		if o.Before != nil {
			if err := o.Before(ctx, sigs); err != nil {
				return err
			}
		}
		resp, err := ingest(ctx, sigs)
		if err != nil {
			return fmt.Errorf("ingest rows of lines %d to %d (in event-time order, %d of %d sent): %w", slices.Min(lines), slices.Max(lines), sent, total, err)
		}
		for _, res := range resp.GetResults() {
			switch res.GetStatus() {
			case demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED:
				sum.Accepted++
				if res.GetRevision() > 1 {
					sum.Revised++
				}
				if res.GetHistorical() {
					sum.Historical++
				} else {
					sum.Live++
				}
			case demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE:
				sum.Duplicates++
			default:
				reason := res.GetReason()
				if res.GetRetryable() {
					reason += " (temporary: import the file again to retry)"
				}
				sum.Rejected = append(sum.Rejected, &RowError{Line: lines[res.GetIndex()], SourceID: res.GetSourceId(), Reason: reason})
			}
		}
		sum.Add(resp.GetCrises())
		sent += len(sigs)
		sigs, lines = sigs[:0], lines[:0]
		if o.Sending != nil {
			o.Sending(sent, total)
		}
		return nil
	}
	err = sorter.each(func(sig *demarchev1.Signal, line int) error {
		if sum.From == nil {
			sum.From = sig.GetObservedAt()
		}
		sum.To = sig.GetObservedAt()
		sigs = append(sigs, sig)
		lines = append(lines, line)
		fed[demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType())] = true
		if len(sigs) >= batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && len(fed) > 0 {
		err = finishImport(ctx, ingest, sum, fed)
	}
	sortRejected(sum.Rejected)
	return sum, err
}

// finishImport sends the import's last requests: the situations it fed,
// whose crises get its summary warning.
func finishImport(ctx context.Context, ingest IngestFunc, sum *ImportSummary, fed map[string]bool) error {
	keys := make([]string, 0, len(fed))
	for k := range fed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for len(keys) > 0 {
		n := min(len(keys), demarchev1.MaxImportSituations)
		resp, err := ingest(withFinish(ctx, sum.ImportID, keys[:n]), nil)
		if err != nil {
			return fmt.Errorf("finish import %s (its summary warnings): %w", sum.ImportID, err)
		}
		sum.Add(resp.GetCrises())
		keys = keys[n:]
	}
	return nil
}

// sortRejected orders rejections by line (parser and service rejections interleave).
func sortRejected(rs []*RowError) {
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Line < rs[j].Line })
}
