package demarchev1

// Validate checks a request for an audit chain: the reader is a principal
// (recorded in the audit-read record) and the crisis, when given, an id.
func (x *AuditChainRequest) Validate() error {
	c := newChecker("audit chain request")
	c.principal("reader", x.GetReader())
	if x.GetCrisisId() != "" {
		c.id("crisis_id", x.GetCrisisId())
	}
	if x.GetLimit() < 0 || x.GetLimit() > MaxAuditPage {
		c.fail("limit", "%d is out of range (allowed: 0 for the default, up to %d)", x.GetLimit(), MaxAuditPage)
	}
	return c.err()
}

// MaxAuditPage is the most records one audit chain response carries.
const MaxAuditPage = 2000

// Validate checks a request for chain heads.
func (x *AuditHeadsRequest) Validate() error {
	c := newChecker("audit heads request")
	c.principal("reader", x.GetReader())
	if x.GetCrisisId() != "" {
		c.id("crisis_id", x.GetCrisisId())
	}
	return c.err()
}

// Validate checks a record's shape (not its hashes: see services/audit.Verify).
func (x *AuditRecord) Validate() error {
	c := newChecker("audit record")
	if x.GetChain() == "" {
		c.fail("chain", "is required (global or crisis.<id>)")
	}
	if x.GetSequence() == 0 {
		c.fail("sequence", "must be at least 1")
	}
	if n := len(x.GetPrevHash()); n != 32 {
		c.fail("prev_hash", "is %d bytes (want a 32-byte SHA-256)", n)
	}
	if _, ok := AuditRecordKind_name[int32(x.GetKind())]; !ok || x.GetKind() == AuditRecordKind_AUDIT_RECORD_KIND_UNSPECIFIED {
		c.fail("kind", "is required (event or read)")
	}
	if x.GetEventId() == "" {
		c.fail("event_id", "is required")
	}
	if x.GetPrincipal() == "" {
		c.fail("principal", "is required")
	}
	c.timestamp("recorded_at", x.GetRecordedAt())
	return c.err()
}

// Validate checks an evidence manifest's shape.
func (x *EvidenceManifest) Validate() error {
	c := newChecker("evidence manifest")
	if x.GetFormat() != EvidenceBundleFormat {
		c.fail("format", "%q is not %q", x.GetFormat(), EvidenceBundleFormat)
	}
	c.id("crisis_id", x.GetCrisisId())
	if len(x.GetFiles()) == 0 {
		c.fail("files", "is empty")
	}
	seen := map[string]bool{}
	for _, f := range x.GetFiles() {
		switch {
		case f.GetName() == "" || seen[f.GetName()]:
			c.fail("files", "name %q is empty or listed twice", f.GetName())
		case len(f.GetSha256()) != 64:
			c.fail("files", "%s: sha256 %q is not 64 hex digits", f.GetName(), f.GetSha256())
		}
		seen[f.GetName()] = true
	}
	if n := len(x.GetPublicKey()); n != 0 && n != 32 {
		c.fail("public_key", "is %d bytes (want a 32-byte ed25519 key, or none)", n)
	}
	return c.err()
}

// EvidenceBundleFormat is the format of the evidence bundles this code writes.
const EvidenceBundleFormat = "demarche-evidence-bundle/1"

// Validate checks a read to record.
func (x *AuditReadRequest) Validate() error {
	c := newChecker("audit read")
	c.principal("reader", x.GetReader())
	if x.GetCrisisId() != "" {
		c.id("crisis_id", x.GetCrisisId())
	}
	c.text("detail", x.GetDetail(), true)
	return c.err()
}

// AuditOperations are the workflow operations outside Démarche that the audit
// trail records (AuditOperationRequest.operation).
var AuditOperations = []string{"terminate", "cancel", "reset"}

// Validate checks a request to record an operation done to a crisis's workflow.
func (x *AuditOperationRequest) Validate() error {
	c := newChecker("audit operation request")
	c.id("crisis_id", x.GetCrisisId())
	if x.GetWorkflowId() == "" {
		c.fail("workflow_id", "is required")
	}
	if x.GetHistoryEventId() <= 0 {
		c.fail("history_event_id", "must be the operation's history event (at least 1)")
	}
	known := false
	for _, op := range AuditOperations {
		known = known || op == x.GetOperation()
	}
	if !known {
		c.fail("operation", "%q is not one of terminate, cancel, reset", x.GetOperation())
	}
	if x.GetEventId() == "" {
		c.fail("event_id", "is required (a stable id of the operation, e.g. <run id>/<history event id>)")
	}
	c.timestamp("time", x.GetTime())
	return c.err()
}
