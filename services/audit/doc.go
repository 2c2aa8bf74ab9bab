// Package audit is the audit trail: a durable consumer (durable name "audit")
// of every crisis event that appends each one to tamper-evident hash chains,
// one per crisis and one global; a NATS micro service ("audit") that serves
// the chains and their heads, and audits every read of them; and the offline
// tools auditors use: Verify, Reconcile and evidence bundles (WriteBundle,
// VerifyBundle).
//
// # Storage
//
// Records are protobuf messages (demarche.v1.AuditRecord, binary encoding,
// exactly the canonical encoding below plus the hash field) in the JetStream
// stream DEMARCHE_AUDIT (deny delete, deny purge), one subject per chain:
//
//	demarche.audit.global          the global chain ("global")
//	demarche.audit.crisis.<id>     the chain of one crisis ("crisis.<id>")
//
// A record is appended on the condition that the chain's last record is still
// the one it links to (expected-last-subject-sequence), so two writers can
// never fork a chain: the loser reads the new head and links to it. Its
// Nats-Msg-Id is "<event id>@<chain>", so an event delivered again is stored
// once; the service also skips an event already at the chain's head. When the
// service is down, the durable consumer keeps its place in DEMARCHE_CRISIS and
// the service catches up, in stream order, when it comes back.
//
// # What is hashed (for outside verifiers)
//
// Record hash. hash = SHA-256(canonical(record)), where canonical(record) is
// the protobuf binary encoding of the AuditRecord with its hash (4) and
// signature (20) fields cleared: fields in ascending field-number order, each field that is not at
// its proto3 default written once, nothing else (no unknown fields; the message
// has no maps, so this is what proto.MarshalOptions{Deterministic: true}
// writes, and what any conforming encoder writes for it). Timestamps are the
// nested google.protobuf.Timestamp message (seconds = 1, nanos = 2).
//
// Chain link. Record n of a chain (sequence n, from 1) carries prev_hash = the
// hash of record n-1, or 32 zero bytes for record 1. A chain verifies when, for
// every position n, sequence = n, prev_hash = hash of the record before, and
// hash = SHA-256(canonical(record)); Verify reports the first position where
// one of these fails, which is where a record was modified, deleted, inserted
// or moved (a perfectly forged insertion breaks at the record after it).
// Truncation of a chain's tail shows only against a head (below).
//
// Record signature. When a signing key is configured, signature = the
// ed25519 signature of the record's hash by that key (the key that signs the
// heads): Verify checks every record from the first signed one on (every
// record, with a trusted key), so a record written by anything but the audit
// service breaks the chain at itself, however well it links.
//
// Origin. A record of an event the workflow published carries workflow_id,
// run_id and history_event_id (the ActivityTaskScheduled event of the
// publishing activity), from the event's ce-workflowid, ce-workflowrun and
// ce-historyevent; Reconcile matches them with the histories of every run
// of the workflow (runs.go: a reset's new run copies the replaced run's
// events up to the reset point, which stay that run's). What the
// service accepts at all is in guard.go; alarms and isolation in alarms.go;
// anchors in anchor.go.
//
// Event digest. event_digest = SHA-256 over, for each CloudEvents attribute in
// this order: ce-specversion, ce-id, ce-source, ce-type, ce-time (RFC 3339 with
// nanoseconds, UTC, as on the wire), ce-subject, ce-dataschema, content-type,
// the bytes "<name>:<value>\n"; then one "\n"; then the event's data, the
// protobuf binary encoding of the event message (deterministic, as above).
//
// Principal. DecisionRecorded: the decision's principal; SeverityChanged, SharingChanged,
// StageSkipped, StageReopened: their principal; CommentAdded: the comment's principal; PartnerRoleAcknowledged: the
// acknowledgement's principal; CrisisOpened: who opened it, when known;
// anything else: the event's ce-source. Reads: the reader.
//
// Chain heads. A ChainHead (chain, sequence, hash of the last record, time) is
// signed, when a key is configured, with ed25519 over canonical(head): the
// protobuf encoding of the ChainHead with its signature field (6) cleared and
// its public_key field (5) set. Keys come from configuration: a file holding a
// base64 ed25519 seed (32 bytes), or the environment (DEMARCHE_AUDIT_SIGNING_KEY
// holding the base64 seed, or DEMARCHE_AUDIT_SIGNING_KEY_FILE naming the file).
//
// Reads. Every call of a read endpoint first appends an "audit-read" record
// (kind READ, principal = the reader, detail = what was read) to the global
// chain and to the crisis's chain when a crisis is named and has one.
//
// # Evidence bundles
//
// A bundle is a gzip-compressed tar file holding
//
//	manifest.json                 demarche.v1.EvidenceManifest (protobuf JSON): every other file with its SHA-256
//	manifest.sig                  (when signed) base64 ed25519 signature of manifest.json's exact bytes
//	histories/<workflow id>.json  the workflow histories of the crisis and its children (temporal workflow show --output json)
//	audit/chain.json              the crisis's chain (demarche.v1.AuditChain, protobuf JSON, with its head)
//	trail.json                    the decision trail (JSON array of trail entries)
//	figures.json                  the closure figures (demarche.v1.ClosureFigures, protobuf JSON)
//
// VerifyBundle checks it with no server: the manifest's hashes (naming any
// file that was modified, added or removed), the manifest's signature when
// present, and the chain inside with its head.
package audit
