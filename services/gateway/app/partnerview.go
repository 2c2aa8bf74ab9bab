package app

import (
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/partnerview"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// PartnerView is what a partner liaison (PartnerOnly) may read of a crisis
// shared with its organisation: pkg/partnerview's State, the same allow-list
// the partners service applies to the events it delivers to the partner's
// stream and webhook (partnerview.Event), so the page and the feed tell a
// partner the same things. See pkg/partnerview for what it leaves out and why.
func PartnerView(st *demarchev1.CrisisState, partner string) *demarchev1.CrisisState {
	return partnerview.State(st, partner)
}

// forPrincipal is st as p may read it: the partner's view for a partner
// liaison who is nothing else, the whole state otherwise.
func forPrincipal(st *demarchev1.CrisisState, p *authn.Principal) *demarchev1.CrisisState {
	if st != nil && PartnerOnly(p) {
		return PartnerView(st, p.Partner)
	}
	return st
}
