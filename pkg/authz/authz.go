// Package authz is Démarche's one policy table: which roles may take which
// action, and which principals may see a crisis of a given confidentiality.
// The gateway enforces it on every route; the crisis workflow enforces it
// again on every control (decisions carry their role in their own type,
// workflows/crisis), so a request that reaches Temporal some other way is
// still refused.
package authz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Action is something a principal asks to do.
type Action string

// Actions, named as the routes and verbs that perform them.
const (
	OpenCrisis     Action = "crisis.open"
	OpenDrill      Action = "crisis.open-drill"
	ChoosePlaybook Action = "crisis.choose-playbook"
	ReadCrises     Action = "crisis.read" // lists, reads, figures (filtered by clearance)
	Decide         Action = "crisis.decide"
	// Controls are named as their updates (crisis.escalate, ...).
	Escalate    Action = "crisis.escalate"
	DeEscalate  Action = "crisis.de-escalate"
	SkipStage   Action = "crisis.skip-stage"
	ReopenStage Action = "crisis.reopen-stage"
	PartnerRole Action = "crisis.partner-role"
	Warn        Action = "crisis.warn"
	Share       Action = "crisis.share" // who a crisis is shared with (partners)
	SendSignals Action = "signals.send"
	ReadScores  Action = "situations.read"
	// RecordDialogue records an early-warning dialogue with a regional
	// organisation about a situation (¶66 "early warning dialogues").
	RecordDialogue Action = "situations.dialogue"
	// ApplyRules puts early-warning rules into force on the running platform
	// (every situation re-scored, the change on the audit trail).
	ApplyRules Action = "rules.apply"
	// Comment leaves a comment on a crisis's timeline: the people who work on
	// the crisis inside (operators, analysts); not partners (a comment is
	// internal text, never in a partner's view) nor auditors (who read and
	// verify, never write to a crisis).
	Comment      Action = "crisis.comment"
	ReadRoster   Action = "roster.read"
	ReadFunds    Action = "funds.read"
	ReadPartners Action = "partners.read"
	Audit        Action = "audit.read"
	// ReadLessons: closure lessons across crises (internal: never a
	// partner's), each crisis's filtered by clearance as its reads are.
	ReadLessons Action = "lessons.read"
	// ContributeFunds credits a voluntary contribution to a fund (money in,
	// never out: paying out comes only from a crisis's funding decisions).
	ContributeFunds Action = "funds.contribute"
)

type role = demarchev1.Role

const (
	duty     = demarchev1.Role_ROLE_DUTY_OFFICER
	desk     = demarchev1.Role_ROLE_DESK_OFFICER
	head     = demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT
	approver = demarchev1.Role_ROLE_FUNDING_OFFICER
	msu      = demarchev1.Role_ROLE_MEDIATION_SUPPORT
	fundMgr  = demarchev1.Role_ROLE_FUND_MANAGER
	roster   = demarchev1.Role_ROLE_ROSTER_COORDINATOR
	analyst  = demarchev1.Role_ROLE_ANALYST
	auditor  = demarchev1.Role_ROLE_AUDITOR
	partner  = demarchev1.Role_ROLE_PARTNER
	admin    = demarchev1.Role_ROLE_ADMIN
	drill    = demarchev1.Role_ROLE_DRILL_COORDINATOR
	field    = demarchev1.Role_ROLE_FIELD_OFFICER
)

// operators run crises day to day.
var operators = []role{duty, desk, head, approver, msu}

// table is the policy: action -> roles allowed. Decide is allowed to every
// role that takes some decision; which decision, the decision's own type says.
var table = map[Action][]role{
	OpenCrisis:      {duty, head},
	OpenDrill:       {drill},
	ChoosePlaybook:  {head},
	ReadCrises:      {duty, desk, head, approver, msu, fundMgr, roster, analyst, auditor, partner, admin, drill, field},
	Decide:          {duty, desk, head, approver, msu, field}, // the operators, and field officers (their presence's field reports)
	Escalate:        {duty, head},
	DeEscalate:      {duty, head},
	SkipStage:       {duty, head},
	ReopenStage:     {duty, head},
	PartnerRole:     {duty, head, partner},
	Warn:            {duty, analyst},
	Share:           {duty, admin},
	Comment:         {duty, desk, head, approver, msu, analyst},
	SendSignals:     {duty, analyst, partner},
	ReadScores:      {duty, desk, head, analyst, auditor},
	RecordDialogue:  {analyst, head},
	ApplyRules:      {head},
	ReadRoster:      {duty, desk, head, msu, roster, auditor},
	ReadFunds:       {approver, fundMgr, head, auditor},
	ReadPartners:    {duty, desk, head, admin, auditor},
	Audit:           {auditor, admin},
	ReadLessons:     {duty, desk, head, approver, msu, fundMgr, roster, analyst, auditor, admin, drill},
	ContributeFunds: {approver, fundMgr},
}

// Actions lists every action of the table, sorted (for matrices and docs).
func Actions() []Action {
	out := make([]Action, 0, len(table))
	for a := range table {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Roles are the roles allowed an action.
func Roles(a Action) []role { return table[a] }

// Allowed reports whether roles include one allowed the action.
func Allowed(a Action, roles []role) bool {
	for _, r := range table[a] {
		if slices.Contains(roles, r) {
			return true
		}
	}
	return false
}

// Check is Allowed as an error: ErrForbidden naming the roles that may.
func Check(a Action, p *authn.Principal) error {
	if p == nil {
		return fmt.Errorf("%w: no credential", errs.ErrUnauthenticated)
	}
	if Allowed(a, p.Roles) {
		return nil
	}
	return fmt.Errorf("%w: %s needs one of the roles %s", errs.ErrForbidden, a, roleList(table[a]))
}

func roleList(rs []role) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Slug()
	}
	return strings.Join(names, ", ")
}

// rank orders confidentiality levels.
func rank(c demarchev1.Confidentiality) int {
	switch c {
	case demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC:
		return 1
	case demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED:
		return 2
	case demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL:
		return 3
	}
	return 4 // unknown: nobody
}

// CanSee reports whether a principal may know a crisis exists: a partner
// liaison sees only crises shared with its organisation; a field officer
// only the crises its presence leads (leadPresence), up to its clearance;
// everyone else sees crises up to their clearance. Callers answer 404
// (never 403) otherwise.
func CanSee(p *authn.Principal, conf demarchev1.Confidentiality, sharedWith []string, leadPresence string) bool {
	if p == nil {
		return false
	}
	if p.Has(partner) && !p.HasAny(operators...) {
		return slices.Contains(sharedWith, p.Partner)
	}
	if FieldOnly(p) && (leadPresence == "" || leadPresence != p.Presence) {
		return false
	}
	return rank(conf) <= rank(p.Clearance)
}

// FieldOnly reports whether p is a field officer who reads crises by no
// other role: such a principal sees only the crises its presence leads
// (¶33 "our teams on the ground").
func FieldOnly(p *authn.Principal) bool {
	if p == nil || !p.Has(field) {
		return false
	}
	for _, r := range table[ReadCrises] {
		if r != field && p.Has(r) {
			return false
		}
	}
	return true
}

// Clearances are the confidentiality levels a principal may see (for
// visibility queries); partners are filtered by sharing instead.
func Clearances(p *authn.Principal) []demarchev1.Confidentiality {
	var out []demarchev1.Confidentiality
	for _, c := range []demarchev1.Confidentiality{demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC,
		demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED, demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL} {
		if rank(c) <= rank(p.Clearance) {
			out = append(out, c)
		}
	}
	return out
}
