package gateway

import (
	"net/http"
	"net/url"
	"strings"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// sharing changes who a crisis is shared with (app.Share, as the API's
// sharing route: the same checks: role, registered partners, the crisis's
// rules).
func (c *console) sharing(w http.ResponseWriter, r *http.Request, u *user) {
	id := r.PathValue("id")
	list := func(name string) []string {
		var out []string
		for _, v := range strings.FieldsFunc(r.PostFormValue(name), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' }) {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, strings.ToUpper(v))
			}
		}
		return out
	}
	msg := &demarchev1.SharingControl{Reason: strings.TrimSpace(r.PostFormValue("reason")), Share: list("share"), Unshare: list("unshare")}
	if _, err := c.s.app.Share(r.Context(), u.Principal, c.update(r, id), msg); err != nil {
		_, text := refusal(err)
		c.refused(w, r, u, "/console/crises/"+url.PathEscape(id), "form-sharing", "", "Refused — sharing was not changed: "+text)
		return
	}
	http.Redirect(w, r, "/console/crises/"+url.PathEscape(id)+"?done=sharing", http.StatusSeeOther)
}
