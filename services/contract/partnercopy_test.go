package contract

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/eventbus"
)

// The AsyncAPI document describes what a partner receives, not the
// platform's own events: the partner channel carries a Partner… message for
// exactly the types partners receive, whose payload schema lists only the
// fields a partner's copy carries (nested messages cut down alike), whose
// headers and example have no workflow extension attributes, and whose
// example is a partner's copy of the event's example.
func TestAsyncAPIDescribesThePartnersCopies(t *testing.T) {
	b, err := AsyncAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	comps := doc["components"].(map[string]any)
	messages, schemas := comps["messages"].(map[string]any), comps["schemas"].(map[string]any)
	channel := doc["channels"].(map[string]any)["partner"].(map[string]any)["messages"].(map[string]any)
	delivered := 0
	for _, et := range CrisisEvents() {
		name := "Partner" + string(et.Message.Name())
		keep, ok := PartnerFields(et)
		_, listed := channel[name]
		msg, _ := messages[name].(map[string]any)
		if ok != listed || ok != (msg != nil) {
			t.Errorf("%s: partners receive it: %v; on the partner channel: %v; a component message: %v", et.Message, ok, listed, msg != nil)
			continue
		}
		if _, platform := channel[string(et.Message.Name())]; platform {
			t.Errorf("the partner channel lists the platform's own %s", et.Message.Name())
		}
		if !ok {
			continue
		}
		delivered++
		// The payload schema: only allowed fields, recursively.
		var check func(ref string)
		check = func(ref string) {
			def, _ := schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
			if def == nil {
				t.Errorf("%s: schema %s missing", name, ref)
				return
			}
			props := def["properties"].(map[string]any)
			title, _ := def["title"].(string)
			if !strings.HasPrefix(title, partnerSchemaPrefix) {
				t.Errorf("%s: its payload uses %s, not a partner's cut-down schema", name, title)
				return
			}
			md := messageDescriptor(protoreflect.FullName(strings.TrimPrefix(title, partnerSchemaPrefix)))
			fields := md.Fields()
			for i := 0; i < fields.Len(); i++ {
				f := fields.Get(i)
				p, has := props[f.JSONName()]
				if has != keep[f.FullName()] {
					t.Errorf("%s: field %s in the partner schema: %v, in the partner's copy: %v", name, f.FullName(), has, keep[f.FullName()])
				}
				if has && f.Message() != nil && !strings.HasPrefix(string(f.Message().FullName()), "google.") {
					pm := p.(map[string]any)
					if all, ok := pm["allOf"].([]any); ok {
						pm = all[0].(map[string]any)
					}
					if items, ok := pm["items"].(map[string]any); ok {
						pm = items
					}
					check(pm["$ref"].(string))
				}
			}
		}
		check(msg["payload"].(map[string]any)["$ref"].(string))
		headers := msg["headers"].(map[string]any)["properties"].(map[string]any)
		example := msg["examples"].([]any)[0].(map[string]any)
		exHeaders := example["headers"].(map[string]any)
		for _, h := range []string{eventbus.HeaderWorkflowID, eventbus.HeaderWorkflowRun, eventbus.HeaderHistoryEvent} {
			if _, ok := headers[h]; ok {
				t.Errorf("%s: the partner's headers list %s", name, h)
			}
			if _, ok := exHeaders[h]; ok {
				t.Errorf("%s: the partner's example carries %s", name, h)
			}
		}
		if id, _ := exHeaders["Nats-Msg-Id"].(string); !strings.HasSuffix(id, "-"+exHeaders[eventbus.HeaderID].(string)) || len(id) < len(exHeaders[eventbus.HeaderID].(string))+3 {
			t.Errorf("%s: the example's Nats-Msg-Id %q is not <PARTNER>-<ce-id>", name, id)
		}
		copied, _, err := partnerExample(et)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(protoJSON(copied.Data))
		got, _ := json.Marshal(example["payload"])
		if string(got) != string(want) {
			t.Errorf("%s: example payload %s, want the partner's copy %s", name, got, want)
		}
	}
	if delivered < 5 {
		t.Fatalf("only %d event types reach partners in the document", delivered)
	}
}
