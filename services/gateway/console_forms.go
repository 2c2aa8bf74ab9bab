package gateway

// Forms that do not punish mistakes. A refused submit answers with a
// redirect (post/redirect/get: the address bar never holds a POST address,
// and reloading never sends the form again) to the page the form is on,
// which shows the refusal beside the form, in its fields' own words, with
// every value that was typed kept. What was typed and why it was refused is
// kept here, in the gateway's memory, for a short while under a random id
// and for the person who typed it only; the browser keeps a draft of its own
// too (console.js), which also outlives an expired session.

import (
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/demarche/demarche/pkg/ids"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// keptFor is how long a refused form's values are kept for its page.
const keptFor = 15 * time.Minute

// keptMax bounds the forms kept at once (the oldest go first).
const keptMax = 2000

// kept is one refused form: which form, what was typed, and why it was
// refused. The template reads it (Get, Is) to fill the form in again.
type kept struct {
	// Form is the form's element id ("form-good-offices", "form-control").
	Form   string
	Kind   string // the decision kind, for a decision form
	Values url.Values
	Error  string
	owner  string
	at     time.Time
}

// Is reports whether the refused form is this one.
func (k *kept) Is(form string) bool { return k != nil && k.Form == form }

// Get is a value the refused form had, for that form only.
func (k *kept) Get(form, name string) string {
	if !k.Is(form) {
		return ""
	}
	return strings.Join(k.Values[name], "\n")
}

// Chose reports whether the refused form had value v chosen in name.
func (k *kept) Chose(form, name, v string) bool {
	if !k.Is(form) {
		return false
	}
	for _, got := range k.Values[name] {
		if got == v {
			return true
		}
	}
	return false
}

// keptForms is the gateway's short memory of refused forms.
type keptForms struct {
	mu    sync.Mutex
	forms map[string]*kept
}

// keep stores a refused form and returns its id for the redirect.
func (ks *keptForms) keep(owner string, r *http.Request, form, kind, msg string) string {
	vals := url.Values{}
	for name, v := range r.PostForm {
		if name != "csrf" && name != "key" {
			vals[name] = v
		}
	}
	return ks.put(&kept{Form: form, Kind: kind, Values: vals, Error: msg, owner: owner})
}

// keepMessage stores a refusal's message only (a sign-in's: the token typed
// is never kept).
func (ks *keptForms) keepMessage(owner, form, msg string) string {
	return ks.put(&kept{Form: form, Values: url.Values{}, Error: msg, owner: owner})
}

func (ks *keptForms) put(k *kept) string {
	id := ids.New()
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.forms == nil {
		ks.forms = map[string]*kept{}
	}
	now := time.Now()
	for k, v := range ks.forms {
		if now.Sub(v.at) > keptFor {
			delete(ks.forms, k)
		}
	}
	if len(ks.forms) >= keptMax {
		oldest := make([]string, 0, len(ks.forms))
		for k := range ks.forms {
			oldest = append(oldest, k)
		}
		sort.Slice(oldest, func(i, j int) bool { return ks.forms[oldest[i]].at.Before(ks.forms[oldest[j]].at) })
		for _, k := range oldest[:len(oldest)-keptMax+1] {
			delete(ks.forms, k)
		}
	}
	k.at = now
	ks.forms[id] = k
	return id
}

// get finds a refused form by its id, for its owner only (nil otherwise, or
// once it has expired). It stays for a reload of the page.
func (ks *keptForms) get(owner, id string) *kept {
	if id == "" {
		return nil
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	k := ks.forms[id]
	if k == nil || k.owner != owner || time.Since(k.at) > keptFor {
		return nil
	}
	return k
}

// refused answers a refused console form: the form is kept and the browser
// sent back to page (its own address, without query), which shows it.
func (c *console) refused(w http.ResponseWriter, r *http.Request, u *user, page, form, kind, msg string) {
	id := c.kept.keep(u.Subject, r, form, kind, msg)
	http.Redirect(w, r, page+"?failed="+url.QueryEscape(id)+"#"+form, http.StatusSeeOther)
}

// keptOf is the refused form a page was sent back with (an empty one: none;
// the templates ask it of every form), and the error to show: a refusal no
// longer kept says so.
func (c *console) keptOf(r *http.Request, u *user) (*kept, string) {
	id := r.URL.Query().Get("failed")
	if id == "" {
		return &kept{}, ""
	}
	k := c.kept.get(u.Subject, id)
	if k == nil {
		return &kept{}, "A form was refused here earlier; its values are no longer kept (they are kept for " + humanDuration(keptFor) + "). Your browser may still hold a draft."
	}
	return k, k.Error
}

// fieldErrorRE finds one field's refusal in an error: "<path>: <reason>",
// up to the next field's ("; ") or the end.
func fieldErrorRE(path string) *regexp.Regexp {
	return regexp.MustCompile(`(?:^|[\s;:(])` + regexp.QuoteMeta(path) + `: ([^;]+)`)
}

// plainFieldErrors reads a refusal of a decision form: each field's own
// reason (by the field's name in the form) and the message with the
// schema's field paths (fact_finding_mandate.report_due) put in the fields'
// labels ("Report due").
func plainFieldErrors(kind, msg string) (map[string]string, string) {
	out := map[string]string{}
	f := demarchev1.DecisionFormOf(kind)
	if f == nil {
		return out, msg
	}
	inputs := append([]*demarchev1.DecisionInput(nil), f.Inputs...)
	// The longest paths first, so one path inside another is not cut.
	sort.Slice(inputs, func(i, j int) bool { return len(inputs[i].Path) > len(inputs[j].Path) })
	for _, in := range inputs {
		if m := fieldErrorRE(in.Path).FindStringSubmatch(msg); m != nil {
			out[in.Name] = strings.TrimSpace(m[1])
		}
		msg = strings.ReplaceAll(msg, in.Path+":", in.Label+":")
	}
	if m := fieldErrorRE("rationale").FindStringSubmatch(msg); m != nil {
		out["rationale"] = strings.TrimSpace(m[1])
		msg = strings.Replace(msg, "rationale:", "Rationale:", 1)
	}
	return out, msg
}
