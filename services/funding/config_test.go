package funding_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/internal/configfile"
)

// TestDemoFundsAreTheDemo: the embedded demo funds parse, and are the two
// demo funds and the drill fund (demarche dev opens them on a new data folder).
func TestDemoFundsAreTheDemo(t *testing.T) {
	funds := funding.DemoFunds()
	if len(funds) != 3 || funds[0].GetId() != "flexible-financing" || funds[0].GetOpeningBalanceUsd() != 5_000_000 ||
		funds[2].GetId() != funding.DrillFund || !funds[2].GetDrill() || funds[2].GetOpeningBalanceUsd() != 1_000_000_000_000 {
		t.Fatalf("demo funds: %v", funds)
	}
}

// TestExampleFundsFileIsValid: the example production file in deploy/ loads,
// and holds no demo fund.
func TestExampleFundsFileIsValid(t *testing.T) {
	funds, err := funding.LoadFunds("../../deploy/funds.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range funds {
		for _, demo := range funding.DemoFunds() {
			if f.GetId() == demo.GetId() && !f.GetDrill() {
				t.Errorf("the example production file holds the demo fund %s", f.GetId())
			}
		}
	}
}

// TestBadFundsFilesSayWhatAndWhere: every bad file is refused with the file,
// the line, the entry, the field, why and what is allowed; every problem of a
// file is reported at once.
func TestBadFundsFilesSayWhatAndWhere(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		says       []string
	}{
		{"empty", ``, []string{"funds.yaml: the file is empty", `"funds", a list`}},
		{"not yaml", "funds: [\n  - id: a\n", []string{"funds.yaml: line", "not YAML or JSON"}},
		{"wrong top key", "fund:\n  - id: x\n", []string{"line 1: fund: unknown key (allowed: funds)"}},
		{"not a list", "funds: flexible\n", []string{"line 1: funds: must be a non-empty list"}},
		{"empty list", "funds: []\n", []string{"funds: must be a non-empty list"}},
		{"unknown field", "funds:\n  - id: f-one\n    name: One\n    opening_balance: 10\n    per_crisis_ceiling_usd: 1\n",
			[]string{`line 4: funds[0] (id "f-one"): opening_balance: unknown field (allowed: id, name, opening_balance_usd, per_crisis_ceiling_usd, drill, quorum)`}},
		{"text for a number", "funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: five million\n    per_crisis_ceiling_usd: 1\n",
			[]string{`line 4: funds[0] (id "f-one"): opening_balance_usd: "five million" must be a whole number`}},
		{"quoted number", "funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: \"10\"\n    per_crisis_ceiling_usd: 1\n",
			[]string{`opening_balance_usd: "10" must be a whole number`}},
		{"yes for a bool", "funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n    drill: maybe\n",
			[]string{`line 6: funds[0] (id "f-one"): drill: "maybe" must be true or false`}},
		{"rules of the message", "funds:\n  - id: x\n    opening_balance_usd: -5\n    per_crisis_ceiling_usd: 0\n",
			[]string{`line 2: funds[0] (id "x"): id: "x" must be 3-100 characters`, "funds[0] (id \"x\"): name: is required",
				"line 3: funds[0] (id \"x\"): opening_balance_usd: -5: a fund cannot open below zero", "line 4: funds[0] (id \"x\"): per_crisis_ceiling_usd: 0: must be positive"}},
		{"ceiling above the balance", "funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 11\n",
			[]string{`line 5: funds[0] (id "f-one"): per_crisis_ceiling_usd: 11 is above the opening balance 10`, "allowed: 1 to the opening balance"}},
		{"duplicate id", "funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n  - id: f-one\n    name: Again\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n",
			[]string{`line 6: funds[1] (id "f-one"): id: "f-one" is already the id of the fund at line 2`}},
		{"field twice", "funds:\n  - id: f-one\n    name: One\n    name: Two\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n",
			[]string{`line 4: funds[0] (id "f-one"): name: is given twice`}},
		{"drill fund not drill", "funds:\n  - id: drill-fund\n    name: Drills\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n",
			[]string{`funds[0] (id "drill-fund"): drill: fund drill-fund is the fund drills draw from: it must say drill: true`}},
		{"quorum of zero approvers", "funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n    quorum:\n      - above_usd: 5\n        approvers: 0\n",
			[]string{`line 6: funds[0] (id "f-one"): quorum[0].approvers: 0 approvers: a quorum needs 1 to 5 distinct approvers`}},
		{"quorum rule unknown field", "funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n    quorum:\n      - above: 5\n        approvers: 2\n",
			[]string{`line 7: funds[0] (id "f-one") quorum[0]: above: unknown field (allowed: above_usd, approvers)`}},
		{"entry not a mapping", "funds:\n  - flexible-financing\n", []string{"line 2: funds[0]: must be a mapping of fields (id, name, opening_balance_usd, per_crisis_ceiling_usd, drill, quorum)"}},
		{"every problem at once", "funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 0\n  - id: f-two\n    nme: Two\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n",
			[]string{"2 problem(s)", `funds[0] (id "f-one"): per_crisis_ceiling_usd`, `funds[1] (id "f-two"): nme: unknown field`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := funding.ParseFunds("funds.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, configfile.ErrInvalid) || !errors.Is(err, errs.ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			for _, want := range tc.says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestFundsFileJSONAndYAML: JSON is read as well as YAML, with the schema's
// JSON names too; a missing file names itself.
func TestFundsFileJSONAndYAML(t *testing.T) {
	funds, err := funding.ParseFunds("funds.json", []byte(`{"funds": [{"id": "f-one", "name": "One", "openingBalanceUsd": 10, "per_crisis_ceiling_usd": 5, "drill": false}]}`))
	if err != nil || len(funds) != 1 || funds[0].GetOpeningBalanceUsd() != 10 || funds[0].GetPerCrisisCeilingUsd() != 5 {
		t.Fatalf("JSON: %v %v", funds, err)
	}
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	if _, err := funding.LoadFunds(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestQuorumRulesAreData: a fund's quorum rules, read from its file, say how
// many distinct approvers a request needs: the highest rule the amount is
// above, one when none applies (the demo: above USD 500,000 on the flexible
// financing mechanism, two).
func TestQuorumRulesAreData(t *testing.T) {
	funds, err := funding.ParseFunds("funds.yaml", []byte("funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: 10_000_000\n    per_crisis_ceiling_usd: 5_000_000\n"+
		"    quorum:\n      - above_usd: 500_000\n        approvers: 2\n      - above_usd: 2_000_000\n        approvers: 3\n  - id: f-two\n    name: Two\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fund   int
		amount int64
		want   int32
	}{{0, 1, 1}, {0, 500_000, 1}, {0, 500_001, 2}, {0, 2_000_000, 2}, {0, 2_000_001, 3}, {1, 10, 1}} {
		if got := funding.ApprovalsRequired(funds[tc.fund], tc.amount); got != tc.want {
			t.Errorf("fund %s, USD %d: %d approvers, want %d", funds[tc.fund].GetId(), tc.amount, got, tc.want)
		}
	}
	demo := funding.DemoFunds()
	if got := funding.ApprovalsRequired(demo[0], 600_000); got != 2 {
		t.Errorf("demo flexible-financing, USD 600000: %d approvers, want 2", got)
	}
	if got := funding.ApprovalsRequired(demo[0], 120_000); got != 1 {
		t.Errorf("demo flexible-financing, USD 120000: %d approvers, want 1", got)
	}
}
