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

// MaxContributionUSD is the largest single voluntary contribution accepted
// (one hundred million): a larger one is a typo more often than a gift, and
// is recorded in parts if real.
const MaxContributionUSD = 100_000_000

// LedgerCurrency is the one currency funds' ledgers are kept in.
const LedgerCurrency = "USD"

// Validate checks a voluntary contribution credited to a fund.
func (x *ContributeCall) Validate() error {
	c := newChecker("contribution")
	c.id("fund", x.GetFund())
	k := x.GetContribution()
	if k == nil {
		c.fail("contribution", "is required: donor, amount, currency and reference")
		return c.err()
	}
	c.text("contribution.donor", k.GetDonor(), true)
	if len(k.GetDonor()) > 100 {
		c.fail("contribution.donor", "is %d bytes long (allowed: at most 100: a member state's ISO code or an institution's name)", len(k.GetDonor()))
	}
	if a := k.GetAmount(); a <= 0 || a > MaxContributionUSD {
		c.fail("contribution.amount", "%d is out of range (allowed: 1 to %d, whole units of the currency)", a, MaxContributionUSD)
	}
	if k.GetCurrency() != LedgerCurrency {
		c.fail("contribution.currency", "%q is not the ledger's currency (allowed: %s; convert the contribution before recording it)", k.GetCurrency(), LedgerCurrency)
	}
	c.text("contribution.reference", k.GetReference(), true)
	if len(k.GetReference()) > 100 {
		c.fail("contribution.reference", "is %d bytes long (allowed: at most 100)", len(k.GetReference()))
	}
	c.principal("contribution.contributed_by", k.GetContributedBy())
	return c.err()
}
