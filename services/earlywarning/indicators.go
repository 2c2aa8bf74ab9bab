package earlywarning

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Early warning beyond fatalities (issue 27 item 5): the report names
// dangerous indicators
// (¶45 "patterns of human rights violations or hate speech") and the
// genocide adviser's office filtering them
// (¶45 "Special Adviser for the Prevention of Genocide"). None of them has a death toll, so a signal of such a category
// is weighed by the rules file's weight for it (times a risk factor's weight
// for atrocity crimes, times its source's credibility), never by fatalities.
// A signal names its category in its rule field ("hate-speech", or
// "atrocity-risk/intergroup-tensions" for a risk factor); the service weighs
// it by the rules in force as it enters (Rules.WeighIndicator). Every other
// signal is weighed exactly as before.

// Category is a kind of indicator weighed by the rules, not by deaths.
type Category struct {
	Name   string
	Weight float64
	// RiskFactors, when given, are the category's framework: a signal must
	// name one ("atrocity-risk/<factor>") and weighs Weight × its weight.
	RiskFactors []RiskFactor
}

// RiskFactor is one risk factor of a category's framework, with its weight.
type RiskFactor struct {
	Name   string
	Weight float64
}

// Source kinds the rules know
// (¶46 "Women's groups in particular play an important role in early warning").
const (
	SourceCivilSociety = "civil-society"
	SourceWomensGroup  = "womens-group"
)

// SignalSource is a known signal source (its NATS identity signals-<name>
// publishes on demarche.signals.<name>), its kind and credibility.
type SignalSource struct {
	Name        string
	Kind        string
	Credibility float64
}

// Category returns the category named, if the rules have it.
func (r *Rules) Category(name string) (Category, bool) {
	for _, c := range r.Categories {
		if c.Name == name {
			return c, true
		}
	}
	return Category{}, false
}

// SignalSource returns the known source named, if the rules list it.
func (r *Rules) SignalSource(name string) (SignalSource, bool) {
	for _, s := range r.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return SignalSource{}, false
}

// IndicatorWeight is the weight the rules give a signal whose rule is
// "category" or "category/risk-factor" from source: category weight × risk
// factor weight × source credibility (1 for a source the rules do not list),
// at most the largest signal weight. ok is false when the rule names no
// category (the signal is weighed as before); err says why a category's
// rule is refused (a missing or unknown risk factor).
func (r *Rules) IndicatorWeight(rule, source string) (w float64, ok bool, err error) {
	name, factor, hasFactor := strings.Cut(rule, "/")
	c, found := r.Category(name)
	if !found {
		return 0, false, nil
	}
	w = c.Weight
	switch {
	case len(c.RiskFactors) == 0 && hasFactor:
		return 0, true, fmt.Errorf("rule: %q has no risk factors (allowed: %s alone)", name, name)
	case len(c.RiskFactors) > 0 && !hasFactor:
		return 0, true, fmt.Errorf("rule: %q needs its risk factor, as %s/<factor> (allowed factors: %s)", name, name, strings.Join(c.factorNames(), ", "))
	case hasFactor:
		fw := 0.0
		for _, f := range c.RiskFactors {
			if f.Name == factor {
				fw = f.Weight
			}
		}
		if fw == 0 {
			return 0, true, fmt.Errorf("rule: %q is not a risk factor of %s (allowed: %s)", factor, name, strings.Join(c.factorNames(), ", "))
		}
		w *= fw
	}
	if s, known := r.SignalSource(source); known {
		w *= s.Credibility
	}
	return min(w, demarchev1.MaxSignalWeight), true, nil
}

func (c Category) factorNames() []string {
	out := make([]string, len(c.RiskFactors))
	for i, f := range c.RiskFactors {
		out[i] = f.Name
	}
	return out
}

// WeighIndicator weighs a signal of a category by the rules, in place: its
// weight, and its rules version so the weight can be reproduced. A signal of
// no category is left as it is. The error names the rule field.
func (r *Rules) WeighIndicator(sig *demarchev1.Signal) error {
	w, ok, err := r.IndicatorWeight(sig.GetRule(), sig.GetSource())
	if !ok || err != nil {
		return err
	}
	sig.Weight, sig.RulesVersion = w, r.Version
	return nil
}

// indicators parses the categories and the sources. names are the rules'
// names: a category must not reuse one (a signal's rule would be ambiguous).
func (p *rulesParser) indicators(r *Rules, cats, srcs *yaml.Node, names map[string]bool) {
	if cats != nil {
		if cats.Kind != yaml.SequenceNode {
			p.fail(cats, "categories", "must be a list (- name: hate-speech, weight: 2.5)")
		} else {
			seen := map[string]bool{}
			for i, cn := range cats.Content {
				path := fmt.Sprintf("categories[%d]", i)
				f := p.fields(cn, path, "name", "weight", "risk_factors")
				var c Category
				switch v := f["name"]; {
				case v == nil || !validName(v.Value):
					p.fail(cn, path+".name", "is required: 2-32 lower-case letters, digits, '-' or '_' (a signal names it in its rule)")
				case names[v.Value] || v.Value == r.Default.Name || v.Value == RuleReported:
					p.fail(v, path+".name", "%q is also a classification rule's name: a signal's rule would be ambiguous", v.Value)
				case seen[v.Value]:
					p.fail(v, path+".name", "%q is used by an earlier category", v.Value)
				default:
					c.Name = v.Value
					seen[v.Value] = true
				}
				if f["weight"] == nil {
					p.fail(cn, path+".weight", "is required (%s)", categoryWeightRange)
				}
				c.Weight = p.number(f["weight"], path+".weight", 0, true)
				p.bound(f["weight"], path+".weight", CheckCategoryWeight(c.Weight))
				if fn := f["risk_factors"]; fn != nil {
					c.RiskFactors = p.riskFactors(fn, path+".risk_factors")
				}
				r.Categories = append(r.Categories, c)
			}
		}
	}
	if srcs == nil {
		return
	}
	if srcs.Kind != yaml.SequenceNode {
		p.fail(srcs, "sources", "must be a list (- name: femwise, kind: womens-group, credibility: 1)")
		return
	}
	seen := map[string]bool{}
	for i, sn := range srcs.Content {
		path := fmt.Sprintf("sources[%d]", i)
		f := p.fields(sn, path, "name", "kind", "credibility")
		s := SignalSource{Credibility: 1}
		switch v := f["name"]; {
		case v == nil || !sourcePatternOK(v.Value):
			p.fail(sn, path+".name", "is required: the source as its signals name it (2-32 lower-case letters, digits, '-' or '_')")
		case seen[v.Value]:
			p.fail(v, path+".name", "%q is listed twice", v.Value)
		default:
			s.Name = v.Value
			seen[v.Value] = true
		}
		kinds := []string{SourceCivilSociety, SourceWomensGroup}
		if v := f["kind"]; v == nil || !equalsAny(v.Value, kinds) {
			at := sn
			if v != nil {
				at = v
			}
			p.fail(at, path+".kind", "is required (allowed: %s)", strings.Join(kinds, ", "))
		} else {
			s.Kind = v.Value
		}
		s.Credibility = p.number(f["credibility"], path+".credibility", 1, true)
		p.bound(f["credibility"], path+".credibility", CheckCredibility(s.Credibility))
		r.Sources = append(r.Sources, s)
	}
	sort.SliceStable(r.Sources, func(i, j int) bool { return r.Sources[i].Name < r.Sources[j].Name })
}

func (p *rulesParser) riskFactors(n *yaml.Node, path string) []RiskFactor {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.fail(n, path, "must be a non-empty list (- name: intergroup-tensions, weight: 2)")
		return nil
	}
	var out []RiskFactor
	seen := map[string]bool{}
	for i, fn := range n.Content {
		fp := fmt.Sprintf("%s[%d]", path, i)
		f := p.fields(fn, fp, "name", "weight")
		var rf RiskFactor
		switch v := f["name"]; {
		case v == nil || !validName(v.Value):
			p.fail(fn, fp+".name", "is required: 2-32 lower-case letters, digits, '-' or '_'")
		case seen[v.Value]:
			p.fail(v, fp+".name", "%q is listed twice", v.Value)
		default:
			rf.Name = v.Value
			seen[v.Value] = true
		}
		if f["weight"] == nil {
			p.fail(fn, fp+".weight", "is required (%s)", riskFactorWeightRange)
		}
		rf.Weight = p.number(f["weight"], fp+".weight", 0, true)
		p.bound(f["weight"], fp+".weight", CheckRiskFactorWeight(rf.Weight))
		out = append(out, rf)
	}
	return out
}
