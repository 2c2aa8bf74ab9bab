package contract

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/eventbus"
)

// ExampleCrisis is the crisis the examples describe.
const ExampleCrisis = "GN-20261127-K7Q3P"

// exampleJSON is one example of each event's data, in its protobuf JSON form:
// a coup attempt in Guinea as an operations centre would see it. They are
// checked against the schemas and the input rules by the tests.
var exampleJSON = map[protoreflect.FullName]string{
	"demarche.v1.CrisisOpened": `{"crisis": {"id": "GN-20261127-K7Q3P", "title": "Coup attempt in Conakry",
		"countryCode": "GN", "region": "REGION_AFRICA", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE",
		"severity": 4, "confidentiality": "CONFIDENTIALITY_PUBLIC", "openedAt": "2026-11-27T08:00:00Z",
		"firstSignalAt": "2026-11-27T06:40:00Z", "openedBy": "duty-officer.alice"}}`,
	"demarche.v1.StageEntered": `{"crisisId": "GN-20261127-K7Q3P", "stage": "STAGE_GOOD_OFFICES", "enteredAt": "2026-11-27T09:00:00Z"}`,
	"demarche.v1.StageCompleted": `{"crisisId": "GN-20261127-K7Q3P", "stage": "STAGE_WARNING",
		"completedAt": "2026-11-27T09:00:00Z", "duration": "3600s"}`,
	"demarche.v1.CrisisClosed": `{"crisisId": "GN-20261127-K7Q3P", "closedAt": "2027-05-30T12:00:00Z", "outcome": "OUTCOME_CONTAINED",
		"figures": {"warningToAction": "8400s", "stageTimes": [{"stage": "STAGE_WARNING", "time": "3600s"}],
		"decisions": 11, "fundingDisbursedUsd": "250000", "deadlinesBreached": 0, "total": "15771600s",
		"engagements": 41, "warningToTriage": "4800s", "firstAction": "council-action", "councilActions": 3,
		"deploymentsWithEnvoy": 0, "deploymentsWithoutEnvoy": 1, "fundingLeadTime": "172800s"},
		"lessons": ["An early joint AU-ECOWAS statement bought time for quiet diplomacy."]}`,
	"demarche.v1.DecisionRecorded": `{"crisisId": "GN-20261127-K7Q3P", "decision": {"number": 2, "kind": "good-offices",
		"stage": "STAGE_GOOD_OFFICES", "principal": "head.bob", "rationale": "Both sides still talk to the regional envoy.",
		"decidedAt": "2026-11-27T10:20:00Z", "request": {"principal": "head.bob",
		"rationale": "Both sides still talk to the regional envoy.", "goodOffices": {"option": "GOOD_OFFICES_OPTION_QUIET_DIPLOMACY"}}}}`,
	"demarche.v1.DeadlineAtRisk": `{"crisisId": "GN-20261127-K7Q3P", "deadline": {"name": "standby team deployment",
		"stage": "STAGE_ENVOY_DEPLOYMENT", "startedAt": "2026-11-28T08:00:00Z", "atRiskAt": "2026-11-30T08:00:00Z",
		"dueAt": "2026-12-01T08:00:00Z", "status": "DEADLINE_STATUS_AT_RISK"}}`,
	"demarche.v1.DeadlineBreached": `{"crisisId": "GN-20261127-K7Q3P", "deadline": {"name": "standby team deployment",
		"stage": "STAGE_ENVOY_DEPLOYMENT", "startedAt": "2026-11-28T08:00:00Z", "atRiskAt": "2026-11-30T08:00:00Z",
		"dueAt": "2026-12-01T08:00:00Z", "status": "DEADLINE_STATUS_BREACHED"}}`,
	"demarche.v1.PartnerRoleAcknowledged": `{"crisisId": "GN-20261127-K7Q3P", "ack": {"partner": "ECOWAS",
		"role": "PARTNER_ROLE_KIND_LEAD", "principal": "ecowas.commission", "acknowledgedAt": "2026-11-27T11:00:00Z"}}`,
	"demarche.v1.SeverityChanged": `{"crisisId": "GN-20261127-K7Q3P", "from": 4, "to": 5, "principal": "desk.carol",
		"reason": "Troops deployed around the presidential palace."}`,
	"demarche.v1.WarningAttached": `{"crisisId": "GN-20261127-K7Q3P", "warning": {"source": "ecowarn", "sourceId": "EW-2026-3312",
		"summary": "Curfew declared in Conakry; radio station occupied.", "severity": 4, "observedAt": "2026-11-27T13:10:00Z"}}`,
	"demarche.v1.StageSkipped": `{"crisisId": "GN-20261127-K7Q3P", "stage": "STAGE_FACT_FINDING", "principal": "head.bob",
		"reason": "The facts are public; a mission would add nothing."}`,
	"demarche.v1.StageReopened": `{"crisisId": "GN-20261127-K7Q3P", "stage": "STAGE_GOOD_OFFICES", "principal": "head.bob",
		"reason": "Talks broke down."}`,
	"demarche.v1.SharingChanged": `{"crisisId": "GN-20261127-K7Q3P", "sharedWith": ["ECOWAS", "AU"], "added": ["AU"], "removed": ["EU"],
		"principal": "duty.dana", "reason": "The AU takes the lead; the EU steps back."}`,
	"demarche.v1.CommentAdded": `{"crisisId": "GN-20261127-K7Q3P", "comment": {"principal": "duty.dana",
		"text": "Called the ECOWAS desk: they await our envoy's name before Friday.", "at": "2026-11-28T09:30:00Z"}}`,
	"demarche.v1.FollowUpCheckInDue": `{"crisisId": "GN-20261127-K7Q3P", "number": 3, "dueAt": "2027-03-01T09:00:00Z"}`,
	"demarche.v1.FollowUpCheckInRecorded": `{"crisisId": "GN-20261127-K7Q3P", "number": 3, "checkIn": {"commitmentsImplemented": true,
		"tensions": "Low; the transition calendar holds.", "recommendation": "FOLLOW_UP_RECOMMENDATION_CONTINUE"}}`,
	"demarche.v1.CrisisRelapsed": `{"crisisId": "GN-20261127-K7Q3P", "reason": "severity-5 warning from ecowarn during follow-up"}`,
	"demarche.v1.CrisisAlteredOutside": `{"crisisId": "GN-20261127-K7Q3P", "operation": {"kind": "OUTSIDE_OPERATION_KIND_TERMINATE",
		"identity": "4242@ops-laptop@", "reason": "cleaning up", "at": "2026-11-28T10:00:00Z", "workflowId": "crisis-GN-20261127-K7Q3P",
		"runId": "0193a5c2-1f1e-7c44-9b1a-2f6f5e0c1d01"}}`,
	"demarche.v1.FundsDisbursed": `{"crisisId": "GN-20261127-K7Q3P", "requestId": "FR-1", "fund": "PBF-IRF", "amountUsd": "250000",
		"disbursementKey": "GN-20261127-K7Q3P-FR-1"}`,
	"demarche.v1.WarningRaised": `{"crisisId": "GN-20261127-K7Q3P", "countryCode": "GN", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE",
		"score": 31.5, "threshold": 25, "firstSignalAt": "2026-11-27T06:40:00Z",
		"contributions": [{"source": "acled", "sourceId": "GIN1234", "weight": 18, "observedAt": "2026-11-27T06:40:00Z",
		"summary": "Gunfire near the presidential palace"}, {"source": "ecowarn", "sourceId": "EW-2026-3310", "weight": 13.5,
		"observedAt": "2026-11-27T07:05:00Z", "summary": "Soldiers on state television announce a suspension of the constitution"}]}`,
	"demarche.v1.Signal": `{"source": "ecowarn", "sourceId": "EW-2026-3310", "countryCode": "GN",
		"crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE", "weight": 13.5, "observedAt": "2026-11-27T07:05:00Z",
		"summary": "Soldiers on state television announce a suspension of the constitution", "location": "Conakry", "severity": 4}`,
}

// Example returns the example data of an event type, validated.
func Example(et eventbus.EventType) (proto.Message, error) {
	js, ok := exampleJSON[et.Message]
	if !ok {
		return nil, fmt.Errorf("no example for %s: add one to services/contract/examples.go", et.Message)
	}
	m := et.New()
	if err := protojson.Unmarshal([]byte(js), m); err != nil {
		return nil, fmt.Errorf("example of %s: %w", et.Message, err)
	}
	return m, nil
}

// ExampleEvent is an example CloudEvent of the type, as Encode would build it.
func ExampleEvent(et eventbus.EventType) (eventbus.Event, error) {
	m, err := Example(et)
	if err != nil {
		return eventbus.Event{}, err
	}
	return eventbus.Event{
		ID: "example-" + et.Token, Source: "/demarche/services/worker",
		Type: et.CEType, Subject: ExampleCrisis, Time: exampleTime, Data: m,
	}, nil
}
