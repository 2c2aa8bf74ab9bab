package crisis

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestScheduledEventID reads field 4 of a token shaped like the Temporal
// server's (temporal.server.api.token.v1.Task), and 0 from anything else.
func TestScheduledEventID(t *testing.T) {
	var tok []byte
	for i, s := range []string{"namespace-id", "crisis-GN-1", "run-1"} {
		tok = protowire.AppendTag(tok, protowire.Number(i+1), protowire.BytesType)
		tok = protowire.AppendString(tok, s)
	}
	tok = protowire.AppendTag(tok, 4, protowire.VarintType)
	tok = protowire.AppendVarint(tok, 57)
	tok = protowire.AppendTag(tok, 5, protowire.VarintType)
	tok = protowire.AppendVarint(tok, 2)
	if got := scheduledEventID(tok); got != 57 {
		t.Fatalf("scheduled event id %d, want 57", got)
	}
	for _, bad := range [][]byte{nil, []byte("test-token"), {0xff, 0xff}} {
		if got := scheduledEventID(bad); got != 0 {
			t.Fatalf("%q: %d, want 0", bad, got)
		}
	}
}
