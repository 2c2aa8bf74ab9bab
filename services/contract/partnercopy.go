package contract

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/jsonschema"
	"github.com/demarche/demarche/pkg/partnerview"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
)

// partnerSchemaPrefix names the cut-down schemas of partners' copies
// (#/components/schemas/partner.demarche.v1.CrisisOpened, ...).
const partnerSchemaPrefix = "partner."

// partnerCopyRule says in words what a partner receives, for the documents.
const partnerCopyRule = "A partner receives its own copy of each event: the same CloudEvent (ce-id, ce-type, ce-time, ce-subject, ce-source, ce-dataschema) " +
	"with the data cut down to what a partner may know (an allow-list, pkg/partnerview, shared with the gateway's partner view): the crisis's public face, " +
	"its stages, severity and closure, and the sharing changes and role of the partner's own organisation. Who decided and why, decisions, amounts, funds, " +
	"envoy and roster ids, deadlines, follow-up, warnings, figures and lessons, and other organisations never reach a partner; event types with " +
	"nothing a partner may see are not delivered at all. The copy has no ce-workflowid, ce-workflowrun or ce-historyevent (internal)."

// PartnerFields is what a partner's copy of an event type carries (see
// partnerview.Fields), and whether partners receive the type at all.
func PartnerFields(et eventbus.EventType) (map[protoreflect.FullName]bool, bool) {
	return partnerview.Fields(et.New().ProtoReflect().Type())
}

// partnerExample is the example event as a partner receives it, and which
// partner: the first of the registry's organisations that receives it.
func partnerExample(et eventbus.EventType) (eventbus.Event, string, error) {
	ev, err := ExampleEvent(et)
	if err != nil {
		return eventbus.Event{}, "", err
	}
	names := []string{"ECOWAS", "AU"}
	if reg, err := partners.LoadRegistry(""); err == nil {
		names = reg.Names()
	}
	for _, name := range names {
		if c, ok := partners.PartnerCopy(ev, name); ok {
			return c, name, nil
		}
	}
	return eventbus.Event{}, "", fmt.Errorf("%s: its example reaches no partner of the registry, though partners receive the type: make the example name one", et.Message)
}

// fieldPaths lists a message's fields in keep (nested ones dotted), or those
// not in keep at the top level when left is true.
func fieldPaths(md protoreflect.MessageDescriptor, keep map[protoreflect.FullName]bool, left bool, prefix string) []string {
	var out []string
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		name := prefix + string(f.Name())
		switch {
		case left && !keep[f.FullName()]:
			out = append(out, "`"+name+"`")
		case left && f.Message() != nil && !f.IsMap() && f.Message().ParentFile().Package() != "google.protobuf":
			out = append(out, fieldPaths(f.Message(), keep, true, name+".")...)
		case !left && keep[f.FullName()]:
			if f.Message() != nil && !f.IsMap() && f.Message().ParentFile().Package() != "google.protobuf" {
				out = append(out, fieldPaths(f.Message(), keep, false, name+".")...)
			} else {
				out = append(out, "`"+name+"`")
			}
		}
	}
	return out
}

// partnerNote is one event type's line on what partners receive of it.
func partnerNote(et eventbus.EventType) string {
	md := messageDescriptor(et.Message)
	keep, delivered := PartnerFields(et)
	if !delivered {
		return "not delivered to partners (nothing in it is a partner's to know)"
	}
	note := "their own copy with " + strings.Join(fieldPaths(md, keep, false, ""), ", ")
	if left := fieldPaths(md, keep, true, ""); len(left) > 0 {
		note += "; never " + strings.Join(left, ", ")
	}
	switch et.Message {
	case "demarche.v1.SharingChanged":
		note += "; only a change that adds or removes the partner itself, naming it alone"
	case "demarche.v1.PartnerRoleAcknowledged":
		note += "; only the partner's own role, its principal being the partner organisation's name"
	case "demarche.v1.CrisisOpened":
		note += "; `crisis.shared_with` names the partner alone, if at all"
	}
	return note
}

// partnerMessage is the AsyncAPI message of a partner's copy of an event
// type (ok false: partners do not receive the type).
func partnerMessage(et eventbus.EventType, schemas *jsonschema.Set) (map[string]any, bool) {
	keep, delivered := PartnerFields(et)
	if !delivered {
		return nil, false
	}
	md := messageDescriptor(et.Message)
	ev, partner, err := partnerExample(et)
	if err != nil {
		panic(err)
	}
	route := eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: ExampleCrisis}
	headers := ceHeaders(et, nil)
	props := headers["properties"].(map[string]any)
	for _, h := range []string{eventbus.HeaderWorkflowID, eventbus.HeaderWorkflowRun, eventbus.HeaderHistoryEvent} {
		delete(props, h) // where in Temporal it was published is internal
	}
	exHeaders := exampleHeaders(ev, partners.PartnerSubject(partner, route, et.Token))
	exHeaders["Nats-Msg-Id"] = partner + "-" + ev.ID // as the partners service stores it
	name := string(md.Name())
	return map[string]any{
		"name":    "Partner" + name,
		"title":   et.CEType + " (a partner's copy)",
		"summary": firstSentence(whenPublished(md)) + " As a partner receives it.",
		"description": "Published when: " + whenPublished(md) + "\n\nPartners receive " + partnerNote(et) + ".\n\n" + partnerCopyRule +
			"\n\nBody: `" + string(et.Message) + "` in binary protobuf (the same message, with only these fields set); the payload schema below is the partner copy's protobuf JSON form.",
		"contentType": eventbus.ContentTypeData,
		"headers":     headers,
		"payload":     schemas.MessageOnly(md, func(f protoreflect.FieldDescriptor) bool { return keep[f.FullName()] }, partnerSchemaPrefix),
		"examples": []any{map[string]any{
			"name": "example", "headers": exHeaders, "payload": protoJSON(ev.Data),
		}},
		"x-protobuf-message": string(et.Message),
		"x-cloudevents-type": et.CEType,
	}, true
}
