package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// JetStream's own snapshot protocol (what `nats stream backup` and
// `nats stream restore` speak), so a decrypted stream of a backup is a
// natscli backup too: backup.json (the stream's configuration and state at
// the snapshot) and stream.arc.s2 (the server's archive).

// streamState is the part of JetStream's StreamState a backup records.
type streamState struct {
	Msgs      uint64    `json:"messages"`
	Bytes     uint64    `json:"bytes"`
	FirstSeq  uint64    `json:"first_seq"`
	FirstTime time.Time `json:"first_ts"`
	LastSeq   uint64    `json:"last_seq"`
	LastTime  time.Time `json:"last_ts"`
	Consumers int       `json:"consumer_count"`
}

type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) err() error {
	if e == nil {
		return nil
	}
	return fmt.Errorf("JetStream: %s (code %d, error %d)", e.Description, e.Code, e.ErrCode)
}

// streamNames lists every stream the server holds (not a list of our own:
// a stream or bucket added later is backed up too).
func streamNames(nc *nats.Conn) ([]string, error) {
	var names []string
	for offset := 0; ; {
		req, _ := json.Marshal(map[string]int{"offset": offset}) // a map of numbers: Marshal cannot fail
		msg, err := nc.Request("$JS.API.STREAM.NAMES", req, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("list streams: %w", err)
		}
		var resp struct {
			Error   *apiError `json:"error"`
			Total   int       `json:"total"`
			Limit   int       `json:"limit"`
			Streams []string  `json:"streams"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return nil, fmt.Errorf("list streams: %w", err)
		}
		if err := resp.Error.err(); err != nil {
			return nil, fmt.Errorf("list streams: %w", err)
		}
		names = append(names, resp.Streams...)
		offset += len(resp.Streams)
		if len(resp.Streams) == 0 || offset >= resp.Total {
			return names, nil
		}
	}
}

// snapshot takes one stream's snapshot (with its consumers: durable
// consumers' positions are state too) and returns backup.json and the archive.
func snapshot(ctx context.Context, nc *nats.Conn, stream string) (meta []byte, state streamState, archive []byte, err error) {
	inbox := nc.NewRespInbox()
	done := make(chan error, 1)
	var buf bytes.Buffer
	var last atomic.Int64 // when the last chunk came
	last.Store(time.Now().UnixNano())
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		if len(m.Data) == 0 { // the end, or an error in the Status header
			if st := m.Header.Get("Status"); st != "" && !strings.Contains(st, "204") {
				done <- fmt.Errorf("snapshot of %s: %s %s", stream, st, m.Header.Get("Description"))
				return
			}
			done <- nil
			return
		}
		buf.Write(m.Data)
		last.Store(time.Now().UnixNano())
		if m.Reply != "" { // flow control: the server waits for this
			_ = m.Respond(nil)
		}
	})
	if err != nil {
		return nil, state, nil, err
	}
	defer func() { _ = sub.Unsubscribe() }() // cleanup: the subscription ends with the connection anyway
	sub.SetPendingLimits(-1, -1)
	// a map of strings, numbers and bools: Marshal cannot fail
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "chunk_size": 128 * 1024, "jsck": true})
	msg, err := request(ctx, nc, "$JS.API.STREAM.SNAPSHOT."+stream, req)
	if err != nil {
		return nil, state, nil, fmt.Errorf("snapshot of %s: %w", stream, err)
	}
	var resp struct {
		Error  *apiError       `json:"error"`
		Config json.RawMessage `json:"config"`
		State  streamState     `json:"state"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, state, nil, fmt.Errorf("snapshot of %s: %w", stream, err)
	}
	if err := resp.Error.err(); err != nil {
		return nil, state, nil, fmt.Errorf("snapshot of %s: %w", stream, err)
	}
	// Chunks come while the server sends; silence for requestTimeout means
	// it stopped (a flow-control answer it never got: permissions).
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case err := <-done:
			if err != nil {
				return nil, state, nil, err
			}
			break wait
		case <-ctx.Done():
			return nil, state, nil, fmt.Errorf("snapshot of %s: %w", stream, ctx.Err())
		case <-tick.C:
			if time.Since(time.Unix(0, last.Load())) > requestTimeout {
				return nil, state, nil, fmt.Errorf("snapshot of %s: no chunk for %s (may this identity publish on $JS.SNAPSHOT.ACK? the provisioner may)", stream, requestTimeout)
			}
		}
	}
	// backup.json as natscli writes it (its state keeps the server's fields).
	var raw struct {
		State json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(msg.Data, &raw); err != nil {
		return nil, state, nil, fmt.Errorf("snapshot of %s: the server's answer: %w", stream, err)
	}
	meta, err = json.MarshalIndent(map[string]json.RawMessage{"config": resp.Config, "state": raw.State}, "", "  ")
	return meta, resp.State, buf.Bytes(), err
}

// restoreStream restores one stream from its snapshot. The stream must not
// exist (the server refuses to restore over one).
func restoreStream(ctx context.Context, nc *nats.Conn, stream string, meta, archive []byte) (streamState, error) {
	var state streamState
	ctx, refused, stop := refusals(ctx, nc)
	defer stop()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(meta, &m); err != nil {
		return state, fmt.Errorf("restore %s: backup.json: %w", stream, err)
	}
	// raw JSON read from backup.json: Marshal cannot fail
	req, _ := json.Marshal(map[string]json.RawMessage{"config": m["config"], "state": m["state"]})
	msg, err := request(ctx, nc, "$JS.API.STREAM.RESTORE."+stream, req)
	if err != nil {
		return state, fmt.Errorf("restore %s: %w", stream, err)
	}
	var resp struct {
		Error          *apiError `json:"error"`
		DeliverSubject string    `json:"deliver_subject"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return state, fmt.Errorf("restore %s: %w", stream, err)
	}
	if err := resp.Error.err(); err != nil {
		return state, fmt.Errorf("restore %s: %w", stream, err)
	}
	chunk := int(min(int64(64*1024), nc.MaxPayload()))
	for off := 0; off < len(archive); off += chunk {
		end := min(off+chunk, len(archive))
		r, err := request(ctx, nc, resp.DeliverSubject, archive[off:end])
		if rerr := refused(); rerr != nil {
			return state, fmt.Errorf("restore %s: %w (only the restorer identity may restore a stream)", stream, rerr)
		}
		if err != nil {
			return state, fmt.Errorf("restore %s: send chunk at %d: %w (may this identity publish on $JS.SNAPSHOT.RESTORE? only the restorer may)", stream, off, err)
		}
		var e struct {
			Error *apiError `json:"error"`
		}
		if len(r.Data) > 0 && json.Unmarshal(r.Data, &e) == nil && e.Error != nil {
			return state, fmt.Errorf("restore %s: %w", stream, e.Error.err())
		}
	}
	// The end: the server now restores, and answers with the stream's state.
	fin, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	r, err := nc.RequestWithContext(fin, resp.DeliverSubject, nil)
	if err != nil {
		return state, fmt.Errorf("restore %s: %w", stream, err)
	}
	var created struct {
		Error *apiError   `json:"error"`
		State streamState `json:"state"`
	}
	if err := json.Unmarshal(r.Data, &created); err != nil {
		return state, fmt.Errorf("restore %s: %w", stream, err)
	}
	if err := created.Error.err(); err != nil {
		return state, fmt.Errorf("restore %s: %w", stream, err)
	}
	return created.State, nil
}

// requestTimeout bounds each request: a publish the server's permissions
// refuse gets no answer, only an asynchronous error, and would wait for ever.
const requestTimeout = 30 * time.Second

func request(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return nc.RequestWithContext(ctx, subject, data)
}

// refusals makes the connection's permission violations (asynchronous:
// a refused publish gets no answer) cancel the returned context at once,
// naming the refusal; the connection's own handler still runs. Call stop
// when done.
func refusals(ctx context.Context, nc *nats.Conn) (_ context.Context, refused func() error, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	old := nc.Opts.AsyncErrorCB
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if old != nil {
			old(c, sub, err)
		}
		if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			cancel(err)
		}
	})
	refused = func() error {
		if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
	return ctx, refused, func() { nc.SetErrorHandler(old); cancel(nil) }
}

// errStreamExists: a restore into a cluster that already holds the stream.
var errStreamExists = errors.New("the stream exists already")

func streamExists(nc *nats.Conn, stream string) (bool, error) {
	msg, err := nc.Request("$JS.API.STREAM.INFO."+stream, nil, 10*time.Second)
	if err != nil {
		return false, fmt.Errorf("stream %s: %w", stream, err)
	}
	var resp struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return false, err
	}
	if resp.Error == nil {
		return true, nil
	}
	if resp.Error.Code == 404 {
		return false, nil
	}
	return false, fmt.Errorf("stream %s: %w", stream, resp.Error.err())
}
