package earlywarning

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// An import is applied in event-time order: a file's rows are put in order
// of observed_at (then file line, so equal times keep the file's order)
// before any is sent, so a situation's score, its first signal, its crossing
// and its score history are those of the events' own times, whatever order
// the file lists them in (a backtest of the same file crosses on the same
// event). Situations are independent, so the file's one order puts every
// situation's signals in order.
//
// Memory is bounded by an external sort: the rows are read in chunks of at
// most SortChunk signals, each chunk sorted and, when the file holds more
// than one chunk, written to a temporary file (length-prefixed protobuf);
// the chunks are then merged, holding one signal per chunk. So an import
// holds at most SortChunk signals plus one per chunk (a 1,000,000-row file:
// 50 chunks of 20,000), whatever the file's size; the temporary files take
// about the size of the signals on disk and are removed when the import
// ends.

// SortChunk is the most signals an import holds in memory while putting a
// file in event-time order (a signal takes well under 1 KiB: 20,000 of them
// some 10-20 MiB).
const SortChunk = 20_000

// linedSignal is a signal with the line of the file it came from.
type linedSignal struct {
	sig  *demarchev1.Signal
	line int
}

func eventBefore(a, b linedSignal) bool {
	ta, tb := a.sig.GetObservedAt().AsTime(), b.sig.GetObservedAt().AsTime()
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.line < b.line
}

// eventSorter collects signals and gives them back in event-time order.
type eventSorter struct {
	chunk int
	buf   []linedSignal
	runs  []*os.File
}

func newEventSorter(chunk int) *eventSorter {
	if chunk <= 0 {
		chunk = SortChunk
	}
	return &eventSorter{chunk: chunk}
}

// add takes a signal; a full chunk is sorted and written to a temporary file.
func (s *eventSorter) add(sig *demarchev1.Signal, line int) error {
	s.buf = append(s.buf, linedSignal{sig, line})
	if len(s.buf) < s.chunk {
		return nil
	}
	return s.spill()
}

func (s *eventSorter) spill() error {
	sort.Slice(s.buf, func(i, j int) bool { return eventBefore(s.buf[i], s.buf[j]) })
	f, err := os.CreateTemp("", "demarche-import-*.run")
	if err != nil {
		return fmt.Errorf("sort the file in event time: %w", err)
	}
	s.runs = append(s.runs, f)
	w := bufio.NewWriter(f)
	var tmp [2 * binary.MaxVarintLen64]byte
	for _, ls := range s.buf {
		data, err := proto.Marshal(ls.sig)
		if err != nil {
			return fmt.Errorf("sort the file in event time: encode line %d: %w", ls.line, err)
		}
		n := binary.PutUvarint(tmp[:], uint64(ls.line))
		n += binary.PutUvarint(tmp[n:], uint64(len(data)))
		if _, err := w.Write(tmp[:n]); err != nil {
			return fmt.Errorf("sort the file in event time: %w", err)
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("sort the file in event time: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("sort the file in event time: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("sort the file in event time: %w", err)
	}
	clear(s.buf)
	s.buf = s.buf[:0]
	return nil
}

// close removes the temporary files.
func (s *eventSorter) close() {
	for _, f := range s.runs {
		_ = f.Close()           // a temporary file, removed next: nothing to lose
		_ = os.Remove(f.Name()) // a temporary file left behind costs only disk
	}
	s.runs = nil
}

// each calls fn with every signal in event-time order, stopping at its first error.
func (s *eventSorter) each(fn func(sig *demarchev1.Signal, line int) error) error {
	if len(s.runs) == 0 {
		sort.Slice(s.buf, func(i, j int) bool { return eventBefore(s.buf[i], s.buf[j]) })
		for _, ls := range s.buf {
			if err := fn(ls.sig, ls.line); err != nil {
				return err
			}
		}
		return nil
	}
	if len(s.buf) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	h := &runHeap{}
	for _, f := range s.runs {
		r := &run{r: bufio.NewReader(f), name: f.Name()}
		ok, err := r.next()
		if err != nil {
			return err
		}
		if ok {
			h.runs = append(h.runs, r)
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		r := h.runs[0]
		if err := fn(r.head.sig, r.head.line); err != nil {
			return err
		}
		ok, err := r.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

// run reads back one sorted chunk.
type run struct {
	r    *bufio.Reader
	name string
	head linedSignal
}

func (r *run) next() (bool, error) {
	line, err := binary.ReadUvarint(r.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sort the file in event time: read %s: %w", r.name, err)
	}
	size, err := binary.ReadUvarint(r.r)
	if err != nil {
		return false, fmt.Errorf("sort the file in event time: read %s: %w", r.name, err)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r.r, data); err != nil {
		return false, fmt.Errorf("sort the file in event time: read %s: %w", r.name, err)
	}
	sig := &demarchev1.Signal{}
	if err := proto.Unmarshal(data, sig); err != nil {
		return false, fmt.Errorf("sort the file in event time: decode %s: %w", r.name, err)
	}
	r.head = linedSignal{sig, int(line)}
	return true, nil
}

type runHeap struct{ runs []*run }

func (h *runHeap) Len() int           { return len(h.runs) }
func (h *runHeap) Less(i, j int) bool { return eventBefore(h.runs[i].head, h.runs[j].head) }
func (h *runHeap) Swap(i, j int)      { h.runs[i], h.runs[j] = h.runs[j], h.runs[i] }
func (h *runHeap) Push(x any)         { h.runs = append(h.runs, x.(*run)) }
func (h *runHeap) Pop() any {
	r := h.runs[len(h.runs)-1]
	h.runs = h.runs[:len(h.runs)-1]
	return r
}
