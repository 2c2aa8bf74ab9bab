package earlywarning

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/nats-io/nats.go"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// DefaultBatch is how many signals an import sends per ingest request.
const DefaultBatch = 500

// IngestFunc sends a batch of signals: IngestOver(nc) across NATS, or
// Service.Ingest in-process.
type IngestFunc func(context.Context, []*demarchev1.Signal) (*demarchev1.IngestResponse, error)

// IngestOver sends batches of signals to the earlywarning service over nc with
// natsrpc.Call (binary protobuf: an import sends many; RequestTimeout each).
func IngestOver(nc *nats.Conn) IngestFunc {
	return func(ctx context.Context, signals []*demarchev1.Signal) (*demarchev1.IngestResponse, error) {
		var resp demarchev1.IngestResponse
		if err := natsrpc.Call(ctx, nc, natsrpc.EarlyWarningIngest, &demarchev1.IngestRequest{Signals: signals}, &resp,
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
	Duplicates int         // signals seen before
	Rejected   []*RowError // rows refused by the parser or the service, in file order
}

// Import reads a conflict-event file, sends its signals in batches and
// summarises. Rows the parser refuses are reported with their line and never
// sent. progress, when set, is called after each batch with the rows read so far.
// A failure of a whole batch (service unreachable) stops the import; what was
// sent before stays recorded, and importing the file again is safe (duplicates).
func Import(ctx context.Context, r io.Reader, format Format, ingest IngestFunc, batch int, progress func(read int)) (*ImportSummary, error) {
	if batch <= 0 {
		batch = DefaultBatch
	}
	rd, err := NewReader(r, format)
	if err != nil {
		return nil, err
	}
	sum := &ImportSummary{}
	var sigs []*demarchev1.Signal
	var lines []int
	flush := func() error {
		if len(sigs) == 0 {
			return nil
		}
		resp, err := ingest(ctx, sigs)
		if err != nil {
			return fmt.Errorf("ingest rows up to line %d: %w", lines[len(lines)-1], err)
		}
		for _, res := range resp.GetResults() {
			switch res.GetStatus() {
			case demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED:
				sum.Accepted++
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
		sigs, lines = sigs[:0], lines[:0]
		if progress != nil {
			progress(sum.Read)
		}
		return nil
	}
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
		sigs = append(sigs, sig)
		lines = append(lines, line)
		if len(sigs) >= batch {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	if err := flush(); err != nil {
		return sum, err
	}
	sortRejected(sum.Rejected)
	return sum, nil
}

// sortRejected orders rejections by line (parser and service rejections interleave).
func sortRejected(rs []*RowError) {
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Line < rs[j].Line })
}
