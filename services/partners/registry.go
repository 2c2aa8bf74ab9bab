package partners

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// DefaultRegistry is the embedded registry used when no file is configured.
//
//go:embed partners.json
var DefaultRegistry []byte

// ErrInvalidRegistry is matched (errors.Is) by every registry loading failure.
var ErrInvalidRegistry = errors.New("invalid partners registry")

// namePattern keeps partner names safe as NATS subject tokens and consumer names.
var namePattern = regexp.MustCompile(`^[A-Z][A-Z0-9_-]{1,31}$`)

// MinSecretLength is the shortest HMAC secret a webhook may use.
const MinSecretLength = 16

// Partner is one organisation and what it wants to receive. A public crisis
// goes to every partner whose filters all match (an empty filter matches
// everything); a restricted or confidential crisis only to the partners it is
// explicitly shared with (Crisis.shared_with).
type Partner struct {
	// Name is the short code, upper case, e.g. ECOWAS.
	Name string `json:"name"`
	// Title is the full name.
	Title string `json:"title"`
	// Regions, by slug (africa, americas, asia-pacific, europe, middle-east).
	Regions []string `json:"regions,omitempty"`
	// Countries, ISO 3166-1 alpha-2 codes.
	Countries []string `json:"countries,omitempty"`
	// CrisisTypes, by slug (election-violence, unconstitutional-change, ...).
	CrisisTypes []string `json:"crisis_types,omitempty"`
	// Webhook, when set, also receives every event delivered to the partner.
	Webhook *Webhook `json:"webhook,omitempty"`
	// Kind is what the partner is (regional-organisation when left out;
	// group-of-friends, contact-group, civil-society-network, womens-network).
	Kind string `json:"kind,omitempty"`
	// Members of a group of friends or contact group: registry partners by
	// name, member states by ISO 3166-1 alpha-2 code, institutions by name
	// (e.g. "World Bank"; ¶53 "our cooperation with the World Bank"). Only groups have members, and a group has at
	// least two.
	Members []string `json:"members,omitempty"`

	kind      demarchev1.PartnerKind
	regions   []demarchev1.Region
	types     []demarchev1.CrisisType
	countries []string
}

// Webhook is an HTTP endpoint receiving the partner's events, signed with an
// HMAC secret given inline or, better, through an environment variable.
type Webhook struct {
	URL       string `json:"url"`
	Secret    string `json:"secret,omitempty"`
	SecretEnv string `json:"secret_env,omitempty"`

	secret []byte
}

// Registry is the validated set of partners, by name.
type Registry struct {
	partners []*Partner // sorted by name
	byName   map[string]*Partner
}

type registryFile struct {
	Partners []*Partner `json:"partners"`
}

// LoadRegistry reads the registry file at path, or the embedded default when
// path is empty. Webhook secrets named by secret_env are read from the environment.
func LoadRegistry(path string) (*Registry, error) {
	if path == "" {
		return ParseRegistry(DefaultRegistry, "embedded default", os.Getenv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRegistry, err)
	}
	return ParseRegistry(data, path, os.Getenv)
}

// ParseRegistry decodes and validates a registry (JSON). source names it in
// errors; getenv resolves secret_env. Every problem is reported, each with the
// entry and the field.
func ParseRegistry(data []byte, source string, getenv func(string) string) (*Registry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f registryFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidRegistry, source, err)
	}
	var problems []string
	fail := func(i int, p *Partner, field, format string, args ...any) {
		name := ""
		if p != nil && p.Name != "" {
			name = " (" + p.Name + ")"
		}
		problems = append(problems, fmt.Sprintf("partners[%d]%s: %s: %s", i, name, field, fmt.Sprintf(format, args...)))
	}
	if len(f.Partners) == 0 {
		problems = append(problems, "partners: at least one partner is required")
	}
	r := &Registry{byName: map[string]*Partner{}}
	listed := map[string]bool{} // every name in the file: a group's members may be partners
	for _, p := range f.Partners {
		if p != nil {
			listed[p.Name] = true
		}
	}
	for i, p := range f.Partners {
		if p == nil {
			fail(i, nil, "entry", "is empty")
			continue
		}
		switch {
		case p.Name == "":
			fail(i, p, "name", "is required (a short upper-case code, e.g. ECOWAS)")
		case !namePattern.MatchString(p.Name):
			fail(i, p, "name", "%q must be 2-32 upper-case letters, digits, '-' or '_', starting with a letter", p.Name)
		case r.byName[p.Name] != nil:
			fail(i, p, "name", "%q is listed twice", p.Name)
		}
		if strings.TrimSpace(p.Title) == "" {
			fail(i, p, "title", "is required (the organisation's full name)")
		}
		for j, s := range p.Regions {
			reg, err := demarchev1.ParseRegion(s)
			if err != nil {
				fail(i, p, fmt.Sprintf("regions[%d]", j), "%q is not a region (allowed: africa, americas, asia-pacific, europe, middle-east)", s)
				continue
			}
			p.regions = append(p.regions, reg)
		}
		for j, s := range p.Countries {
			if _, ok := demarchev1.RegionOf(s); !ok {
				fail(i, p, fmt.Sprintf("countries[%d]", j), "%q is not an ISO 3166-1 alpha-2 country code (upper case, e.g. GN)", s)
				continue
			}
			p.countries = append(p.countries, s)
		}
		for j, s := range p.CrisisTypes {
			t, err := demarchev1.ParseCrisisType(s)
			if err != nil {
				fail(i, p, fmt.Sprintf("crisis_types[%d]", j), "%q is not a crisis type (allowed: %s)", s, strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
				continue
			}
			p.types = append(p.types, t)
		}
		if w := p.Webhook; w != nil {
			u, err := url.Parse(w.URL)
			switch {
			case w.URL == "":
				fail(i, p, "webhook.url", "is required")
			case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
				fail(i, p, "webhook.url", "%q must be an absolute http or https URL", w.URL)
			}
			switch {
			case w.Secret != "" && w.SecretEnv != "":
				fail(i, p, "webhook", "set secret or secret_env, not both")
			case w.Secret == "" && w.SecretEnv == "":
				fail(i, p, "webhook.secret_env", "is required: the environment variable holding the HMAC secret (or set secret)")
			case w.SecretEnv != "":
				w.secret = []byte(getenv(w.SecretEnv))
				if len(w.secret) == 0 {
					fail(i, p, "webhook.secret_env", "environment variable %s is not set", w.SecretEnv)
				}
			default:
				w.secret = []byte(w.Secret)
			}
			if n := len(w.secret); n > 0 && n < MinSecretLength {
				fail(i, p, "webhook.secret", "is %d bytes long (allowed: at least %d)", n, MinSecretLength)
			}
		}
		p.kind = demarchev1.PartnerKind_PARTNER_KIND_REGIONAL_ORGANISATION
		if p.Kind != "" {
			k, err := demarchev1.ParsePartnerKind(p.Kind)
			if err != nil {
				fail(i, p, "kind", "%q is not a partner kind (allowed: %s)", p.Kind, strings.Join(demarchev1.PartnerKindSlugs(), ", "))
			} else {
				p.kind = k
			}
		}
		checkMembers(i, p, listed, fail)
		if p.Name != "" && r.byName[p.Name] == nil {
			r.byName[p.Name] = p
			r.partners = append(r.partners, p)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w %s: %s", ErrInvalidRegistry, source, strings.Join(problems, "; "))
	}
	sort.Slice(r.partners, func(i, j int) bool { return r.partners[i].Name < r.partners[j].Name })
	return r, nil
}

// isGroup reports whether a kind gathers members (groups of friends, contact groups).
func isGroup(k demarchev1.PartnerKind) bool {
	return k == demarchev1.PartnerKind_PARTNER_KIND_GROUP_OF_FRIENDS || k == demarchev1.PartnerKind_PARTNER_KIND_CONTACT_GROUP
}

// checkMembers checks a partner's members list: a group of friends or
// contact group names at least two members (registry partners and
// institutions by name, member states by ISO code), each once; any other
// kind names none.
func checkMembers(i int, p *Partner, listed map[string]bool, fail func(int, *Partner, string, string, ...any)) {
	if !isGroup(p.kind) {
		if len(p.Members) > 0 {
			fail(i, p, "members", "only a group-of-friends or contact-group has members (this partner is a %s)", p.kind.Slug())
		}
		return
	}
	if len(p.Members) < 2 {
		fail(i, p, "members", "a %s names at least two members (member states by ISO code, e.g. NO; institutions by name, e.g. World Bank; registry partners by name), got %d", p.kind.Slug(), len(p.Members))
	}
	seen := map[string]bool{}
	for j, m := range p.Members {
		field := fmt.Sprintf("members[%d]", j)
		switch t := strings.TrimSpace(m); {
		case t == "" || t != m:
			fail(i, p, field, "%q must be a non-empty name without surrounding spaces", m)
		case len(t) > 80:
			fail(i, p, field, "is %d characters long (allowed: at most 80)", len(t))
		case len(t) == 2 && strings.ToUpper(t) == t && !listed[t]:
			if _, ok := demarchev1.RegionOf(t); !ok {
				fail(i, p, field, "%q is not an ISO 3166-1 alpha-2 country code (a member state, upper case, e.g. NO)", t)
			}
		}
		if seen[strings.ToLower(m)] {
			fail(i, p, field, "%q is listed twice", m)
		}
		seen[strings.ToLower(m)] = true
	}
}

// Partners lists the partners sorted by name.
func (r *Registry) Partners() []*Partner { return slices.Clone(r.partners) }

// Names lists the partners' names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, len(r.partners))
	for i, p := range r.partners {
		out[i] = p.Name
	}
	return out
}

// DefaultPartnerNames are the names of the embedded registry's partners.
func DefaultPartnerNames() []string {
	r, err := LoadRegistry("")
	if err != nil {
		panic(err) // the embedded registry is valid (tested)
	}
	return r.Names()
}

// Lookup finds a partner by name, case-insensitively.
func (r *Registry) Lookup(name string) (*Partner, bool) {
	p, ok := r.byName[strings.ToUpper(strings.TrimSpace(name))]
	return p, ok
}

// PartnerKind is what the partner is (a regional organisation unless the
// registry says otherwise).
func (p *Partner) PartnerKind() demarchev1.PartnerKind { return p.kind }

// SharedWith reports whether the crisis names this partner in shared_with
// (case-insensitively).
func (p *Partner) SharedWith(c *demarchev1.Crisis) bool {
	for _, s := range c.GetSharedWith() {
		if strings.EqualFold(strings.TrimSpace(s), p.Name) {
			return true
		}
	}
	return false
}

// MaySee reports whether the partner may know of the crisis at all: it is
// public, or it was explicitly shared with the partner. Anything other than
// public (including an unset level) counts as not public.
func (p *Partner) MaySee(c *demarchev1.Crisis) bool {
	return c.GetConfidentiality() == demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC || p.SharedWith(c)
}

// Subscribed reports whether the crisis matches the partner's filters
// (regions, countries, crisis types; an empty filter matches everything).
func (p *Partner) Subscribed(c *demarchev1.Crisis) bool {
	return (len(p.regions) == 0 || slices.Contains(p.regions, c.GetRegion())) &&
		(len(p.countries) == 0 || slices.Contains(p.countries, c.GetCountryCode())) &&
		(len(p.types) == 0 || slices.Contains(p.types, c.GetCrisisType()))
}

// Receives reports whether the crisis's events are delivered to the partner:
// a crisis explicitly shared with it always is (sharing is a deliberate
// decision); otherwise only a public crisis matching its filters.
func (p *Partner) Receives(c *demarchev1.Crisis) bool {
	if p.SharedWith(c) {
		return true
	}
	return c.GetConfidentiality() == demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC && p.Subscribed(c)
}

// Info is the partner as the list endpoint shows it (no webhook URL or secret).
func (p *Partner) Info() *demarchev1.PartnerInfo {
	return &demarchev1.PartnerInfo{
		Name:        p.Name,
		Title:       p.Title,
		Regions:     slices.Clone(p.regions),
		CrisisTypes: slices.Clone(p.types),
		Countries:   slices.Clone(p.countries),
		Webhook:     p.Webhook != nil,
		Subject:     PartnerSubjects(p.Name),
		Kind:        p.kind,
		Members:     slices.Clone(p.Members),
	}
}
