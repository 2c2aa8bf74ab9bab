package cli

import (
	"encoding/json"
	"testing"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/services/contract"
)

func TestEventJSON(t *testing.T) {
	for _, et := range contract.CrisisEvents() {
		ev, err := contract.ExampleEvent(et)
		if err != nil {
			t.Fatal(err)
		}
		b, err := eventJSON(ev)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if got["type"] != et.CEType || got["dataschema"] != et.DataSchema || got["datacontenttype"] != "application/json" || got["specversion"] != eventbus.SpecVersion {
			t.Errorf("%s", b)
		}
		if _, ok := got["data"].(map[string]any); !ok {
			t.Errorf("data is not a JSON object: %s", b)
		}
	}
}
