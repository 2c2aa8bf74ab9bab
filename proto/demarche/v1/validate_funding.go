package demarchev1

// Validate checks a fund's configuration.
func (x *Fund) Validate() error {
	c := newChecker("fund " + x.GetId())
	c.id("id", x.GetId())
	c.text("name", x.GetName(), true)
	if x.GetOpeningBalanceUsd() < 0 {
		c.fail("opening_balance_usd", "%d: a fund cannot open below zero", x.GetOpeningBalanceUsd())
	}
	if x.GetPerCrisisCeilingUsd() <= 0 {
		c.fail("per_crisis_ceiling_usd", "%d: must be positive", x.GetPerCrisisCeilingUsd())
	}
	return c.err()
}

// Validate checks a request filed with the funding service.
func (x *FundingRequestCall) Validate() error {
	c := newChecker("funding request")
	c.id("crisis_id", x.GetCrisisId())
	c.principal("requested_by", x.GetRequestedBy())
	r := x.GetRequest()
	c.id("request.request_id", r.GetRequestId())
	c.id("request.fund", r.GetFund())
	if a := r.GetAmountUsd(); a <= 0 || a > MaxFundingRequestUSD {
		c.fail("request.amount_usd", "%d is out of range (allowed: 1 to %d)", a, MaxFundingRequestUSD)
	}
	c.text("request.purpose", r.GetPurpose(), true)
	return c.err()
}

// Validate checks an approval or rejection.
func (x *FundingDecideCall) Validate() error {
	c := newChecker("funding decision")
	c.id("crisis_id", x.GetCrisisId())
	c.id("request_id", x.GetRequestId())
	c.principal("decided_by", x.GetDecidedBy())
	return c.err()
}

// Validate checks a disbursement.
func (x *DisburseCall) Validate() error {
	c := newChecker("disbursement")
	c.id("crisis_id", x.GetCrisisId())
	c.id("request_id", x.GetRequestId())
	c.id("key", x.GetKey())
	return c.err()
}

// DrillFundID is the fund drills draw from (the demo funds of `demarche dev`
// and deploy/funds.example.yaml hold it; the crisis workflow's drill policy asks it): drills run the
// same requests, decisions and disbursements as real crises, on a ledger of
// their own, and the funding service refuses a drill on a real fund and a real
// crisis on a drill fund.
const DrillFundID = "drill-fund"
