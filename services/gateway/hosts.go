package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Host checks (DNS rebinding). A browser sends whatever Host a DNS name
// resolves to: a page on evil.example whose name is made to resolve to
// 127.0.0.1 reaches a gateway on this machine as a "same-origin" page of
// evil.example. So the gateway answers only to the host names it is
// configured for (--public-url, and the loopback names on its own port), and
// a browser's Origin is compared with those configured origins, never with
// the request's own Host. A request for another host gets 421 Misdirected
// Request before anything else runs: sign-in, console, codec, API.

// hostPolicy is what the gateway answers to: Host header values (lower case,
// with the port unless the public URL has none) and browser origins.
type hostPolicy struct {
	hosts   []string
	origins []string
}

// newHostPolicy allows the loopback names on the gateway's own port
// (127.0.0.1, localhost, [::1]), the listening address when it is a
// specific one, and the public URL's host and origin.
func newHostPolicy(publicURL, listenHost string, port int) (*hostPolicy, error) {
	hp := &hostPolicy{}
	add := func(scheme, hostport string) {
		hostport = strings.ToLower(hostport)
		if !slices.Contains(hp.hosts, hostport) {
			hp.hosts = append(hp.hosts, hostport)
		}
		if o := scheme + "://" + hostport; !slices.Contains(hp.origins, o) {
			hp.origins = append(hp.origins, o)
		}
	}
	p := strconv.Itoa(port)
	for _, h := range []string{"127.0.0.1", "localhost", "::1"} {
		add("http", net.JoinHostPort(h, p))
	}
	if ip := net.ParseIP(listenHost); listenHost != "" && (ip == nil || !ip.IsUnspecified()) {
		add("http", net.JoinHostPort(listenHost, p))
	}
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("--public-url %q: want the address people use, scheme and host only, e.g. https://ops.example.org", publicURL)
		}
		add(u.Scheme, u.Host)
		// A browser leaves the scheme's default port out of Host and Origin.
		if def := map[string]string{"http": "80", "https": "443"}[u.Scheme]; u.Port() == def {
			add(u.Scheme, u.Hostname())
		}
	}
	return hp, nil
}

func (hp *hostPolicy) allowsHost(host string) bool {
	return slices.Contains(hp.hosts, strings.ToLower(host))
}

func (hp *hostPolicy) allowsOrigin(origin string) bool {
	return slices.Contains(hp.origins, strings.ToLower(origin))
}

// WithHosts makes a handler made by NewHandler answer only to these host
// names (Host header values, e.g. "127.0.0.1:8080") and take browser forms
// only from their http origins, as a started gateway does with its own.
func WithHosts(hosts ...string) Option {
	return func(s *Service) {
		hp := &hostPolicy{}
		for _, h := range hosts {
			hp.hosts = append(hp.hosts, strings.ToLower(h))
			hp.origins = append(hp.origins, "http://"+strings.ToLower(h))
		}
		s.hosts = hp
	}
}

// checkHost refuses a request for a host the gateway is not configured for,
// before any route sees it.
func (s *Service) checkHost(h http.Handler) http.Handler {
	if s.hosts == nil {
		return h // an embedded handler: the server embedding it checks hosts
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hosts.allowsHost(r.Host) {
			if s.log != nil {
				s.log.Info("refused: misdirected request", zap.String("host", truncate(r.Host, 80)), zap.String("path", truncate(r.URL.Path, 120)),
					zap.String("origin", truncate(r.Header.Get("Origin"), 80)))
			}
			writeJSON(w, http.StatusMisdirectedRequest, map[string]any{
				"error": fmt.Sprintf("misdirected request: this gateway answers to %s only, not to host %q (rule host-check; set --public-url to the address people use)",
					strings.Join(s.hosts.hosts, ", "), truncate(r.Host, 80)),
				"code": "misdirected",
			})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// sameOrigin: a POST from a browser names its origin; it must be one of
// the gateway's configured origins (not merely the request's Host, which a
// rebinding page controls). Without an Origin, Sec-Fetch-Site decides;
// neither (a client that is not a browser) is allowed.
func (s *Service) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		if s.hosts != nil {
			return s.hosts.allowsOrigin(o)
		}
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
