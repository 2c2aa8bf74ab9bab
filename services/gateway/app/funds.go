package app

import (
	"context"
	"fmt"
	"time"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Funds is every fund the funding service holds, with its balance, its
// per-crisis ceiling and its quorum rules, for a principal who may read
// funds (funds.read: the funding officer who approves, the fund manager,
// the head of department, the auditor). The approval card shows them beside
// the request: an approver decides knowing what is left. It reads the funding
// service's balance subject, which the gateway already may ask.
func (a *App) Funds(ctx context.Context, p *authn.Principal) ([]*demarchev1.FundBalance, error) {
	if err := a.allow(authz.ReadFunds, p, "read fund balances"); err != nil {
		return nil, err
	}
	var bal demarchev1.BalanceResponse
	// Short: a page waits for it, and shows the requests without it.
	if err := natsrpc.Call(ctx, a.nc, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &bal, natsrpc.Timeout(2*time.Second)); err != nil {
		return nil, fmt.Errorf("fund balances: %w", err)
	}
	return bal.GetFunds(), nil
}
