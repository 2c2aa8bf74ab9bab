package funding

import (
	_ "embed"
	"fmt"
	"os"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/internal/configfile"
)

// Funds come from a configuration file (YAML or JSON):
//
//	funds:
//	  - id: flexible-financing              # 3-100 letters, digits, '-' or '_'
//	    name: Flexible rapid-response financing mechanism
//	    opening_balance_usd: 5_000_000      # whole US dollars, 0 or more
//	    per_crisis_ceiling_usd: 1_000_000   # positive, at most the opening balance
//	    drill: false                        # true: pays drills only (id drill-fund)
//	    quorum:                             # optional: approvals by amount
//	      - above_usd: 500_000              # a request of more than this...
//	        approvers: 2                    # ...needs 2 distinct approvers (1-5)
//
// Quorum rules are data an operator reads and changes here: a request needs
// the approvers of the highest rule its amount is above (one when none is);
// the crisis workflow counts distinct approvers, never the requester.
// The file says what each fund is; it opens nothing. Opening a fund (writing
// its opening line) is an explicit, audited act: `demarche admin open-fund`.

// DemoFundsFile is the embedded demo funds' name in messages.
const DemoFundsFile = "demo funds (embedded services/funding/demo-funds.yaml)"

//go:embed demo-funds.yaml
var demoFundsYAML []byte

// DemoFunds are the funds `demarche dev` opens on a new data folder: two
// real-looking ones and the drill fund (a trillion, so drills never run it
// dry). Demo data: never in production.
func DemoFunds() []*demarchev1.Fund {
	funds, err := ParseFunds(DemoFundsFile, demoFundsYAML)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return funds
}

// LoadFunds reads and checks a funds file.
func LoadFunds(path string) ([]*demarchev1.Fund, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("funds file: %w", err)
	}
	return ParseFunds(path, data)
}

// ParseFunds decodes and checks a funds file (file names it in errors):
// every problem of every entry is reported (a *configfile.Error, matching
// errs.ErrInvalid), each with its line, entry, field, why and what is allowed.
func ParseFunds(file string, data []byte) ([]*demarchev1.Fund, error) {
	entries, p := configfile.List(file, data, "funds", func() *demarchev1.Fund { return &demarchev1.Fund{} })
	seen := map[string]int{}
	var funds []*demarchev1.Fund
	for _, e := range entries {
		f := e.Msg
		if first, dup := seen[f.GetId()]; dup {
			p.Fail(e.FieldLines["id"], e.Name, "id", "%q is already the id of the fund at line %d: each fund once", f.GetId(), first)
			continue
		}
		seen[f.GetId()] = e.Line
		if f.GetId() == DrillFund && !f.GetDrill() {
			p.Fail(e.Line, e.Name, "drill", "fund %s is the fund drills draw from: it must say drill: true (real crises never draw from it)", DrillFund)
		}
		if f.GetPerCrisisCeilingUsd() > f.GetOpeningBalanceUsd() {
			line := e.FieldLines["per_crisis_ceiling_usd"]
			p.Fail(line, e.Name, "per_crisis_ceiling_usd", "%d is above the opening balance %d: a ceiling the fund can never reach (allowed: 1 to the opening balance)",
				f.GetPerCrisisCeilingUsd(), f.GetOpeningBalanceUsd())
		}
		for i, q := range f.GetQuorum() {
			line := e.FieldLines["quorum"]
			if q.GetApprovers() < 1 || q.GetApprovers() > MaxApprovers {
				p.Fail(line, e.Name, fmt.Sprintf("quorum[%d].approvers", i), "%d approvers: a quorum needs 1 to %d distinct approvers", q.GetApprovers(), MaxApprovers)
			}
			if q.GetAboveUsd() < 0 {
				p.Fail(line, e.Name, fmt.Sprintf("quorum[%d].above_usd", i), "%d is negative (allowed: 0 or more whole US dollars)", q.GetAboveUsd())
			}
		}
		funds = append(funds, f)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return funds, nil
}

// DemoFundsYAML is the demo funds file itself, for tests that run the
// services as their own processes (they pass it with --funds).
func DemoFundsYAML() []byte { return append([]byte(nil), demoFundsYAML...) }

// MaxApprovers bounds a quorum rule: more distinct funding officers than an
// operations centre has on a shift would block every request.
const MaxApprovers = 5

// ApprovalsRequired is how many distinct approvers a request of amount from
// fund needs: the approvers of the highest quorum rule the amount is above,
// one when no rule applies.
func ApprovalsRequired(fund *demarchev1.Fund, amount int64) int32 {
	need, above := int32(1), int64(-1)
	for _, q := range fund.GetQuorum() {
		if amount > q.GetAboveUsd() && q.GetAboveUsd() >= above {
			need, above = q.GetApprovers(), q.GetAboveUsd()
		}
	}
	return need
}
