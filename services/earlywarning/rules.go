package earlywarning

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The rules as data (issue 11): classification of conflict events (crisis type
// and weight), the scoring window, decay, live horizon, per-region thresholds,
// and the confidentiality and sharing of automatic crises, in one versioned
// YAML file. rules/default.yaml is embedded and documents the format; an
// analyst changes a copy and points the service and the importer at it.

//go:embed rules/default.yaml
var defaultRulesYAML []byte

// ErrBadRules is returned (wrapped in *RulesError) for a rules file that
// cannot be used; nothing is changed by it.
var ErrBadRules = errors.New("invalid rules file")

// RuleProblem is one problem of a rules file: where and why.
type RuleProblem struct {
	Line   int
	Field  string
	Reason string
}

func (p RuleProblem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Field, p.Reason)
	}
	return fmt.Sprintf("%s: %s", p.Field, p.Reason)
}

// RulesError lists every problem found in a rules file.
type RulesError struct {
	File     string
	Problems []RuleProblem
}

func (e *RulesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %s:", ErrBadRules, e.File)
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

func (e *RulesError) Unwrap() error { return ErrBadRules }

// Condition is one alternative of a classification rule: every condition set
// must hold. See rules/default.yaml for their meaning.
type Condition struct {
	Source              string   `yaml:"source"`
	Text                []string `yaml:"text"`
	EventType           []string `yaml:"event_type"`
	SubEventType        []string `yaml:"sub_event_type"`
	Actor               []string `yaml:"actor"`
	ActorsDiffer        bool     `yaml:"actors_differ"`
	Interaction         []string `yaml:"interaction"`
	InteractionContains []string `yaml:"interaction_contains"`
	InteractionNonState bool     `yaml:"interaction_non_state"`
	CivilianTargeting   *bool    `yaml:"civilian_targeting"`
	MinFatalities       int32    `yaml:"min_fatalities"`
	TypeOfViolence      []int    `yaml:"type_of_violence"`
	SidesPrefix         string   `yaml:"sides_prefix"`
}

// ClassRule maps matching events to a crisis type and a weight factor.
type ClassRule struct {
	Name       string                `yaml:"name"`
	CrisisType demarchev1.CrisisType `yaml:"-"`
	TypeSlug   string                `yaml:"crisis_type"`
	Weight     float64               `yaml:"weight"` // factor, default 1
	When       []Condition           `yaml:"when"`
}

// CrisisDefaults are the confidentiality and sharing of the crises early
// warning opens in a set of countries, a region and/or a crisis type.
type CrisisDefaults struct {
	Countries       []string `yaml:"countries"`
	Region          string   `yaml:"region"`
	TypeSlug        string   `yaml:"crisis_type"`
	Confidentiality string   `yaml:"confidentiality"`
	SharedWith      []string `yaml:"shared_with"`

	region          demarchev1.Region
	crisisType      demarchev1.CrisisType
	confidentiality demarchev1.Confidentiality
}

// Rules is a parsed, validated rules file.
type Rules struct {
	// Version is the file's version plus a digest of its bytes ("2026.11.1+1a2b3c4d"):
	// recorded with every signal, score and warning.
	Version string
	// Name says where the rules came from (a path or "default").
	Name string

	Window, HalfLife, Horizon time.Duration
	DefaultThreshold          float64
	Thresholds                map[demarchev1.Region]float64
	// NewEpisodeMargin: while a situation stays above its threshold after its
	// crisis closed, the next episode opens when live signals raise its score
	// by this fraction of the threshold over its lowest since (0: at once).
	NewEpisodeMargin float64

	// Weight of an event = rule weight × (Base + PerLogFatality × ln(1 + f)
	// + PerSqrtFatality × √f), × CivilianTargeting when civilians were
	// targeted. The logarithm gives every death weight with diminishing
	// returns; the square root keeps a massacre from being flattened (with
	// the default rules 162 deaths weigh more than two events of 12).
	Base, PerLogFatality, PerSqrtFatality, CivilianTargeting float64

	Classes []ClassRule
	Default ClassRule
	Crises  []CrisisDefaults

	// Categories are the indicators beyond fatalities (indicators.go): a
	// signal whose rule names one is weighed by it, not by its deaths.
	Categories []Category
	// Sources are the signal sources the rules know (civil society, women's
	// groups), with the credibility their category signals are weighed by.
	Sources []SignalSource

	// Source is the file's text (`demarche warning rules show`).
	Source []byte
}

// DefaultRules are the embedded rules.
func DefaultRules() *Rules {
	r, err := ParseRules("default", defaultRulesYAML)
	if err != nil {
		panic(fmt.Sprintf("embedded rules: %v", err)) // a test pins them valid
	}
	return r
}

// LoadRules reads a rules file; "" is the embedded default.
func LoadRules(path string) (*Rules, error) {
	if path == "" {
		return DefaultRules(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return ParseRules(path, data)
}

// rulesParser collects problems with their lines.
type rulesParser struct {
	problems []RuleProblem
}

func (p *rulesParser) fail(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.problems = append(p.problems, RuleProblem{Line: line, Field: field, Reason: fmt.Sprintf(format, args...)})
}

// fields checks a mapping's keys against the allowed ones and returns its values by key.
func (p *rulesParser) fields(n *yaml.Node, path string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "must be a mapping (key: value lines)")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := k.Value
		if path != "" {
			field = path + "." + k.Value
		}
		known := false
		for _, a := range allowed {
			known = known || a == k.Value
		}
		switch _, dup := out[k.Value]; {
		case !known:
			p.fail(k, field, "unknown field (allowed: %s)", strings.Join(allowed, ", "))
		case dup:
			p.fail(k, field, "is given twice")
		default:
			out[k.Value] = v
		}
	}
	return out
}

// decode decodes a value node, reporting a type mismatch at its line.
func (p *rulesParser) decode(n *yaml.Node, field string, out any, want string) bool {
	if n == nil {
		return false
	}
	if err := n.Decode(out); err != nil {
		p.fail(n, field, "%q is not %s", n.Value, want)
		return false
	}
	return true
}

func (p *rulesParser) duration(n *yaml.Node, field string, min time.Duration, def time.Duration) time.Duration {
	if n == nil {
		return def
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.fail(n, field, "%q is not a duration (e.g. 336h, 90m, 0s)", n.Value)
		return def
	}
	if d < min {
		p.fail(n, field, "%s is too short (allowed: at least %s)", d, min)
	}
	return d
}

// bound records a value out of its bounds (why: Check*'s reason, "" when in bounds).
func (p *rulesParser) bound(n *yaml.Node, field, why string) {
	if n == nil || why == "" {
		return
	}
	if k := len(p.problems); k > 0 && p.problems[k-1].Field == field {
		return // already refused (not a number, negative): one reason is enough
	}
	p.fail(n, field, "%s", why)
}

func (p *rulesParser) number(n *yaml.Node, field string, def float64, positive bool) float64 {
	if n == nil {
		return def
	}
	var v float64
	if !p.decode(n, field, &v, "a number") {
		return def
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		p.fail(n, field, "%q is not a finite number", n.Value)
	case positive && v <= 0:
		p.fail(n, field, "%g must be above 0", v)
	case v < 0:
		p.fail(n, field, "%g is negative", v)
	}
	return v
}

// ParseRules parses and validates a rules file. Every problem is reported
// with its line and field; a file with problems is refused whole.
func ParseRules(name string, data []byte) (*Rules, error) {
	var doc yaml.Node
	p := &rulesParser{}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &RulesError{File: name, Problems: []RuleProblem{{Line: yamlErrorLine(err), Field: "(file)", Reason: err.Error()}}}
	}
	if len(doc.Content) == 0 {
		return nil, &RulesError{File: name, Problems: []RuleProblem{{Field: "(file)", Reason: "is empty (see demarche warning rules show)"}}}
	}
	sum := sha256.Sum256(data)
	r := &Rules{Name: name, Source: data, Thresholds: map[demarchev1.Region]float64{}}
	top := p.fields(doc.Content[0], "", "version", "scoring", "weight", "rules", "default", "crises", "categories", "sources")

	var version string
	if v := top["version"]; v == nil || strings.TrimSpace(v.Value) == "" {
		p.fail(doc.Content[0], "version", "is required (e.g. \"2026.11.1\"): bump it when the rules change")
	} else {
		version = strings.TrimSpace(v.Value)
		if strings.ContainsAny(version, " \t\n+") || len(version) > 40 {
			p.fail(v, "version", "%q must be at most 40 characters without spaces or '+'", version)
		}
	}
	r.Version = version + "+" + hex.EncodeToString(sum[:4])

	sc := p.fields(top["scoring"], "scoring", "window", "half_life", "horizon", "thresholds", "new_episode_margin")
	if top["scoring"] == nil {
		p.fail(doc.Content[0], "scoring", "is required (window, thresholds)")
	}
	r.Window = p.duration(sc["window"], "scoring.window", math.MinInt64, DefaultWindow)
	p.bound(sc["window"], "scoring.window", CheckWindow(r.Window))
	r.HalfLife = p.duration(sc["half_life"], "scoring.half_life", math.MinInt64, 0)
	p.bound(sc["half_life"], "scoring.half_life", CheckHalfLife(r.HalfLife))
	r.Horizon = p.duration(sc["horizon"], "scoring.horizon", math.MinInt64, 0) // 0: the window in force
	p.bound(sc["horizon"], "scoring.horizon", CheckHorizon(r.Horizon))
	r.NewEpisodeMargin = p.number(sc["new_episode_margin"], "scoring.new_episode_margin", DefaultNewEpisodeMargin, false)
	p.bound(sc["new_episode_margin"], "scoring.new_episode_margin", CheckNewEpisodeMargin(r.NewEpisodeMargin))
	r.DefaultThreshold = DefaultThreshold
	th := top["scoring"]
	if n := sc["thresholds"]; n != nil {
		th = n
		if n.Kind != yaml.MappingNode {
			p.fail(n, "scoring.thresholds", "must be a mapping of region: score (default, africa, americas, asia-pacific, europe, middle-east)")
		}
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			field := "scoring.thresholds." + k.Value
			score := p.number(v, field, 0, true)
			if score > 0 {
				p.bound(v, field, CheckThreshold(score))
			}
			if k.Value == "default" {
				r.DefaultThreshold = score
				continue
			}
			region, err := demarchev1.ParseRegion(k.Value)
			if err != nil {
				p.fail(k, field, "%q is not a region (allowed: default, %s)", k.Value, strings.Join(regionSlugs(), ", "))
				continue
			}
			if _, dup := r.Thresholds[region]; dup {
				p.fail(k, field, "is given twice")
			}
			r.Thresholds[region] = score
		}
	} else if top["scoring"] != nil {
		p.fail(th, "scoring.thresholds", "is required (at least default: 25)")
	}

	w := p.fields(top["weight"], "weight", "base", "per_log_fatality", "per_sqrt_fatality", "civilian_targeting")
	r.Base = p.number(w["base"], "weight.base", 1, true)
	r.PerLogFatality = p.number(w["per_log_fatality"], "weight.per_log_fatality", 1, false)
	r.PerSqrtFatality = p.number(w["per_sqrt_fatality"], "weight.per_sqrt_fatality", 0, false)
	r.CivilianTargeting = p.number(w["civilian_targeting"], "weight.civilian_targeting", 1, true)

	names := map[string]bool{}
	if n := top["rules"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			p.fail(n, "rules", "must be a list of rules (- name: ...)")
		} else {
			for i, rn := range n.Content {
				cr := p.classRule(rn, fmt.Sprintf("rules[%d]", i), true)
				if cr.Name != "" && names[cr.Name] {
					p.fail(rn, fmt.Sprintf("rules[%d].name", i), "%q is used by an earlier rule", cr.Name)
				}
				names[cr.Name] = true
				r.Classes = append(r.Classes, cr)
			}
		}
	}
	if top["default"] == nil {
		p.fail(doc.Content[0], "default", "is required (the name and crisis_type of events no rule matches)")
	} else {
		r.Default = p.classRule(top["default"], "default", false)
		if names[r.Default.Name] {
			p.fail(top["default"], "default.name", "%q is also a rule's name", r.Default.Name)
		}
	}

	if n := top["crises"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			p.fail(n, "crises", "must be a list (- region: ..., confidentiality: ...)")
		} else {
			for i, cn := range n.Content {
				r.Crises = append(r.Crises, p.crisisDefaults(cn, fmt.Sprintf("crises[%d]", i)))
			}
		}
	}
	p.indicators(r, top["categories"], top["sources"], names)
	if len(p.problems) > 0 {
		sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Line < p.problems[j].Line })
		return nil, &RulesError{File: name, Problems: p.problems}
	}
	return r, nil
}

func (p *rulesParser) classRule(n *yaml.Node, path string, withWhen bool) ClassRule {
	allowed := []string{"name", "crisis_type", "weight"}
	if withWhen {
		allowed = append(allowed, "when")
	}
	f := p.fields(n, path, allowed...)
	cr := ClassRule{Weight: 1}
	if v := f["name"]; v == nil || !sourcePatternOK(v.Value) {
		p.fail(n, path+".name", "is required: 2-32 lower-case letters, digits, '-' or '_' (recorded with each signal)")
	} else {
		cr.Name = v.Value
	}
	if v := f["crisis_type"]; v == nil {
		p.fail(n, path+".crisis_type", "is required (allowed: %s)", strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
	} else if t, err := demarchev1.ParseCrisisType(v.Value); err != nil || t == demarchev1.CrisisType_CRISIS_TYPE_UNSPECIFIED {
		p.fail(v, path+".crisis_type", "%q is not a crisis type (allowed: %s)", v.Value, strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
	} else {
		cr.CrisisType, cr.TypeSlug = t, v.Value
	}
	cr.Weight = p.number(f["weight"], path+".weight", 1, true)
	if !withWhen {
		return cr
	}
	wn := f["when"]
	if wn == nil || wn.Kind != yaml.SequenceNode || len(wn.Content) == 0 {
		at := n
		if wn != nil {
			at = wn
		}
		p.fail(at, path+".when", "is required: a list of alternatives, each a mapping of conditions")
		return cr
	}
	for i, cn := range wn.Content {
		cr.When = append(cr.When, p.condition(cn, fmt.Sprintf("%s.when[%d]", path, i)))
	}
	return cr
}

func (p *rulesParser) condition(n *yaml.Node, path string) Condition {
	f := p.fields(n, path, "source", "text", "event_type", "sub_event_type", "actor", "actors_differ", "interaction",
		"interaction_contains", "interaction_non_state", "civilian_targeting", "min_fatalities", "type_of_violence", "sides_prefix")
	var c Condition
	if len(f) == 0 && n.Kind == yaml.MappingNode {
		p.fail(n, path, "has no condition (an empty alternative would match every event: use default instead)")
	}
	list := func(key string, out *[]string) {
		if v := f[key]; v != nil && p.decode(v, path+"."+key, out, "a list of words") {
			for _, s := range *out {
				if strings.TrimSpace(s) == "" {
					p.fail(v, path+"."+key, "has an empty entry")
				}
			}
			if len(*out) == 0 {
				p.fail(v, path+"."+key, "is an empty list")
			}
		}
	}
	flag := func(key string, out *bool) {
		if v := f[key]; v != nil {
			p.decode(v, path+"."+key, out, "true or false")
		}
	}
	if v := f["source"]; v != nil {
		if _, err := LookupFormat(Format(v.Value)); err != nil {
			p.fail(v, path+".source", "%q is not a source (allowed: %s)", v.Value, strings.Join(Formats(), ", "))
		}
		c.Source = v.Value
	}
	list("text", &c.Text)
	list("event_type", &c.EventType)
	list("sub_event_type", &c.SubEventType)
	list("actor", &c.Actor)
	list("interaction", &c.Interaction)
	list("interaction_contains", &c.InteractionContains)
	flag("actors_differ", &c.ActorsDiffer)
	flag("interaction_non_state", &c.InteractionNonState)
	if v := f["civilian_targeting"]; v != nil {
		var b bool
		if p.decode(v, path+".civilian_targeting", &b, "true or false") {
			c.CivilianTargeting = &b
		}
	}
	if v := f["min_fatalities"]; v != nil && p.decode(v, path+".min_fatalities", &c.MinFatalities, "a whole number") && c.MinFatalities < 0 {
		p.fail(v, path+".min_fatalities", "%d is negative", c.MinFatalities)
	}
	if v := f["type_of_violence"]; v != nil && p.decode(v, path+".type_of_violence", &c.TypeOfViolence, "a list of 1, 2 or 3") {
		for _, t := range c.TypeOfViolence {
			if t < 1 || t > 3 {
				p.fail(v, path+".type_of_violence", "%d is not a UCDP type of violence (allowed: 1 state-based, 2 non-state, 3 one-sided)", t)
			}
		}
	}
	if v := f["sides_prefix"]; v != nil {
		c.SidesPrefix = v.Value
	}
	p.conditionSource(n, path, c)
	for i := range c.Text {
		c.Text[i] = strings.ToLower(c.Text[i])
	}
	for i := range c.Actor {
		c.Actor[i] = strings.ToLower(c.Actor[i])
	}
	return c
}

// conditionSource checks that an alternative using conditions only one
// format's events can meet (its columns: SignalFormat.Conditions) names that
// format as its source, and uses no other format's.
func (p *rulesParser) conditionSource(n *yaml.Node, path string, c Condition) {
	var owners, used []string
	for _, name := range Formats() {
		if u := registry[Format(name)].Conditions(c); len(u) > 0 {
			owners, used = append(owners, name), append(used, fmt.Sprintf("%s conditions (%s)", name, strings.Join(u, ", ")))
		}
	}
	switch {
	case len(owners) > 1:
		p.fail(n, path, "mixes %s: split them into one alternative per source", strings.Join(used, " with "))
	case len(owners) == 1 && c.Source != owners[0]:
		p.fail(n, path+".source", "must be %s: the alternative uses %s", owners[0], used[0])
	}
}

func (p *rulesParser) crisisDefaults(n *yaml.Node, path string) CrisisDefaults {
	f := p.fields(n, path, "countries", "region", "crisis_type", "confidentiality", "shared_with")
	var d CrisisDefaults
	if v := f["countries"]; v != nil && p.decode(v, path+".countries", &d.Countries, "a list of country codes") {
		for _, c := range d.Countries {
			if _, ok := demarchev1.RegionOf(c); !ok {
				p.fail(v, path+".countries", "%q is not an ISO 3166-1 alpha-2 country code (upper case)", c)
			}
		}
	}
	if v := f["region"]; v != nil && v.Value != "" {
		region, err := demarchev1.ParseRegion(v.Value)
		if err != nil {
			p.fail(v, path+".region", "%q is not a region (allowed: %s)", v.Value, strings.Join(regionSlugs(), ", "))
		}
		d.Region, d.region = v.Value, region
	}
	if v := f["crisis_type"]; v != nil && v.Value != "" {
		t, err := demarchev1.ParseCrisisType(v.Value)
		if err != nil {
			p.fail(v, path+".crisis_type", "%q is not a crisis type (allowed: %s)", v.Value, strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
		}
		d.TypeSlug, d.crisisType = v.Value, t
	}
	if v := f["confidentiality"]; v == nil {
		p.fail(n, path+".confidentiality", "is required (public, restricted or confidential)")
	} else if c, err := demarchev1.ParseConfidentiality(v.Value); err != nil || c == demarchev1.Confidentiality_CONFIDENTIALITY_UNSPECIFIED {
		p.fail(v, path+".confidentiality", "%q is not a confidentiality level (allowed: public, restricted, confidential)", v.Value)
	} else {
		d.Confidentiality, d.confidentiality = v.Value, c
	}
	if v := f["shared_with"]; v != nil {
		p.decode(v, path+".shared_with", &d.SharedWith, "a list of partner organisations")
	}
	return d
}

func sourcePatternOK(s string) bool {
	return (&demarchev1.Signal{Source: s}).Validate() == nil || validName(s)
}

func validName(s string) bool {
	if len(s) < 2 || len(s) > 32 {
		return false
	}
	for i, r := range s {
		ok := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || (i > 0 && (r == '-' || r == '_'))
		if !ok {
			return false
		}
	}
	return true
}

func regionSlugs() []string {
	var out []string
	for v := range demarchev1.Region_name {
		if r := demarchev1.Region(v); r != demarchev1.Region_REGION_UNSPECIFIED {
			out = append(out, r.Slug())
		}
	}
	sort.Strings(out)
	return out
}

func yamlErrorLine(err error) int {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	var line int
	if i := strings.Index(msg, "line "); i >= 0 {
		_, _ = fmt.Sscanf(msg[i:], "line %d", &line) // no line number in the message leaves line 0 (unknown)
	}
	return line
}

// Threshold is a country's threshold under these rules.
func (r *Rules) Threshold(country string) float64 {
	region, _ := demarchev1.RegionOf(country)
	if t, ok := r.Thresholds[region]; ok {
		return t
	}
	return r.DefaultThreshold
}

// CrisisDefaultsFor is the confidentiality and sharing of a crisis early
// warning opens for a country and crisis type: the first entry that matches,
// else restricted and shared with nobody.
func (r *Rules) CrisisDefaultsFor(country string, t demarchev1.CrisisType) (demarchev1.Confidentiality, []string) {
	region, _ := demarchev1.RegionOf(country)
	for _, d := range r.Crises {
		if len(d.Countries) > 0 && !equalsAny(country, d.Countries) {
			continue
		}
		if d.region != demarchev1.Region_REGION_UNSPECIFIED && d.region != region {
			continue
		}
		if d.crisisType != demarchev1.CrisisType_CRISIS_TYPE_UNSPECIFIED && d.crisisType != t {
			continue
		}
		return d.confidentiality, append([]string(nil), d.SharedWith...)
	}
	return demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED, nil
}

// Decayed is a weight observed age before the window's end, under the decay.
func (r *Rules) Decayed(weight float64, age time.Duration) float64 {
	if r.HalfLife <= 0 || age <= 0 {
		return weight
	}
	return weight * math.Exp2(-float64(age)/float64(r.HalfLife))
}

// Summary describes the rules in a few lines (`warning rules show --summary`).
func (r *Rules) Summary() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "rules %s (%s)\n", r.Version, r.Name)
	horizon := "the window"
	if r.Horizon > 0 {
		horizon = r.Horizon.String()
	}
	fmt.Fprintf(&b, "window %s, half-life %s, live horizon %s, new-episode margin %g × threshold, threshold %g", r.Window, r.HalfLife, horizon, r.NewEpisodeMargin, r.DefaultThreshold)
	var regions []string
	for reg, t := range r.Thresholds {
		regions = append(regions, fmt.Sprintf("%s %g", reg.Slug(), t))
	}
	sort.Strings(regions)
	if len(regions) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(regions, ", "))
	}
	fmt.Fprintf(&b, "\nweight = rule weight × (%g + %g × ln(1 + fatalities) + %g × √fatalities) × %g if civilians targeted (at most %d)\n",
		r.Base, r.PerLogFatality, r.PerSqrtFatality, r.CivilianTargeting, demarchev1.MaxSignalWeight)
	for _, c := range r.Classes {
		fmt.Fprintf(&b, "  %-14s → %-24s ×%g (%d alternative(s))\n", c.Name, c.CrisisType.Slug(), c.Weight, len(c.When))
	}
	fmt.Fprintf(&b, "  %-14s → %-24s ×%g (anything else)\n", r.Default.Name, r.Default.CrisisType.Slug(), r.Default.Weight)
	if len(r.Categories) > 0 {
		b.WriteString("indicators beyond fatalities (weight = category × risk factor × source credibility, not by deaths):\n")
	}
	for _, c := range r.Categories {
		fmt.Fprintf(&b, "  %-22s %g", c.Name, c.Weight)
		if len(c.RiskFactors) > 0 {
			var fs []string
			for _, f := range c.RiskFactors {
				fs = append(fs, fmt.Sprintf("%s ×%g", f.Name, f.Weight))
			}
			fmt.Fprintf(&b, " × risk factor: %s", strings.Join(fs, ", "))
		}
		b.WriteString("\n")
	}
	for _, s := range r.Sources {
		fmt.Fprintf(&b, "  source %-15s %s, credibility %g\n", s.Name, s.Kind, s.Credibility)
	}
	return b.String()
}
