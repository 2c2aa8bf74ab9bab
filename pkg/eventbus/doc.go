// Package eventbus publishes and consumes Démarche crisis events on NATS JetStream.
//
// # Wire format
//
// Every event is a CloudEvent 1.0 in the NATS protocol binding's binary content
// mode: the attributes travel as headers, the data is the protobuf encoding of one
// message from proto/demarche/v1/events.proto.
//
//	ce-specversion  1.0
//	ce-id           event id, unique per event (also Nats-Msg-Id: a republished event is stored once)
//	ce-source       the emitter, e.g. /demarche/workflows/crisis-response
//	ce-type         e.g. org.demarche.crisis.stage_entered.v1
//	ce-time         RFC 3339 time of the occurrence
//	ce-subject      the crisis id
//	ce-dataschema   type.googleapis.com/demarche.v1.StageEntered (the protobuf message)
//	content-type    application/protobuf
//
// # Subjects
//
// All crisis events go to one stream, DEMARCHE_CRISIS, on subjects
//
//	demarche.crisis.<region>.<country>.<crisis-id>.<event>
//
// where region is one of africa, americas, asia-pacific, europe, middle-east;
// country is the ISO 3166-1 alpha-2 code; event is the snake-case message name
// (crisis_opened, stage_entered, stage_completed, crisis_closed, ...). So a
// partner can subscribe to
//
//	demarche.crisis.africa.>            every event in one region
//	demarche.crisis.*.GN.>              one country
//	demarche.crisis.*.*.<crisis-id>.>   one crisis
//	demarche.crisis.*.*.*.crisis_opened one event type everywhere
//
// # Dead letters
//
// A consumer that receives an event it cannot decode or validate, or whose handler
// fails permanently or too often, terminates the message (it is never redelivered)
// and copies it to demarche.dlq.<consumer> (stream DEMARCHE_DLQ) with the original
// headers plus Demarche-Dead-Letter-Reason. The consumer then goes on with the next
// event: a poison event never blocks it.
package eventbus
