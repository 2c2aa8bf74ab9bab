// Package natsx connects Démarche processes to NATS the same way everywhere.
package natsx

import (
	"fmt"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
)

// Connect dials NATS and keeps reconnecting for ever after a drop: a service
// outlives a NATS restart, however long. The first dial must succeed, so a
// wrong URL fails fast.
//
// Reconnecting for ever includes refusals: by default nats.go closes a
// connection for good when a server refuses its credentials twice in a row,
// which is what left eventlog "not connected (CLOSED)" after a rolling
// restart that brought a rotated password in. Here a refusal is retried like
// any drop, and the password is read again from the credentials file the URL's
// came from (natsauth.CurrentPassword) at each attempt: after a rotation
// (new .creds file, new hash, server reload) the service reconnects with the
// new password by itself.
// url may be a cluster's seed list (comma-separated URLs): the client dials
// them in random order, learns the other servers of the cluster from the one
// it reaches, and reconnects to any of them when its server dies.
//
// TLS for client connections is configured by the environment, the same for
// every process (the CLI's --nats-ca, --nats-cert and --nats-key set it):
// DEMARCHE_NATS_CA names the CA file that signs the server's certificate
// (TLS is then required), DEMARCHE_NATS_CERT and DEMARCHE_NATS_KEY a client
// certificate for servers that verify clients (mutual TLS).
func Connect(url, name string, log *zap.Logger) (*nats.Conn, jetstream.JetStream, error) {
	tlsOpts, err := TLSOptions()
	if err != nil {
		return nil, nil, err
	}
	inbox := InboxOption(url)
	dial, userOpt := credentialsOption(url)
	nc, err := nats.Connect(dial, append(tlsOpts,
		inbox, userOpt,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectWait(500*time.Millisecond),
		nats.Timeout(5*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", zap.String("url", c.ConnectedUrlRedacted())) }),
		// A refused publish or subscription comes back asynchronously, not
		// to the call: logged, a permission the table lacks (or an
		// attempt it refuses) is seen.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			log.Warn("NATS error", fields...)
		}),
	)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", Redact(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream on %s: %w", Redact(url), err)
	}
	return nc, js, nil
}

// credentialsOption takes the credentials out of url when they were read from
// a credentials file in this process, and gives them at each connection
// attempt instead, read again from the file (natsauth.CurrentPassword); URLs
// with other credentials, or none, are dialled as they are.
func credentialsOption(url string) (string, nats.Option) {
	none := func(*nats.Options) error { return nil }
	parts := strings.Split(url, ",")
	var user, password string
	for i, p := range parts {
		u, err := neturl.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			return url, none
		}
		pw, _ := u.User.Password()
		if i > 0 && (u.User.Username() != user || pw != password) {
			return url, none // several users in one seed list: leave it to nats.go
		}
		user, password = u.User.Username(), pw
		u.User = nil
		parts[i] = u.String()
	}
	if natsauth.CredentialsFileOf(user, password) == "" {
		return url, none
	}
	return strings.Join(parts, ","), nats.UserInfoHandler(func() (string, string) {
		return user, natsauth.CurrentPassword(user, password)
	})
}

// InboxOption is the inbox prefix of the identity in url's user
// (demarche-<identity>: natsauth.InboxPrefix), the only inbox its permissions
// let it read; no option (the default _INBOX) for a URL without a Démarche
// user. Every client of a Démarche server needs it: Connect sets it, a test
// or tool dialling with nats.Connect passes it.
func InboxOption(url string) nats.Option {
	if prefix := InboxPrefix(url); prefix != "" {
		return nats.CustomInboxPrefix(prefix)
	}
	return func(*nats.Options) error { return nil }
}

// InboxPrefix is the inbox prefix of the identity in url's user ("" for none).
// A seed list carries the same user in each URL: the first decides.
func InboxPrefix(url string) string {
	first, _, _ := strings.Cut(url, ",")
	u, err := neturl.Parse(strings.TrimSpace(first))
	if err != nil || u.User == nil {
		return ""
	}
	id, ok := natsauth.IdentityOfUser(u.User.Username())
	if !ok {
		return ""
	}
	return natsauth.InboxPrefix(id)
}

// Environment variables configuring TLS to NATS (see Connect).
const (
	EnvCA   = "DEMARCHE_NATS_CA"
	EnvCert = "DEMARCHE_NATS_CERT"
	EnvKey  = "DEMARCHE_NATS_KEY"
)

// TLSOptions are the client TLS options the environment configures (none
// when DEMARCHE_NATS_CA is unset). A missing or unreadable file is an error
// naming its variable.
func TLSOptions() ([]nats.Option, error) {
	ca, cert, key := os.Getenv(EnvCA), os.Getenv(EnvCert), os.Getenv(EnvKey)
	var out []nats.Option
	if ca != "" {
		if _, err := os.Stat(ca); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvCA, err)
		}
		out = append(out, nats.RootCAs(ca))
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("%s and %s: give both (a client certificate and its key) or neither", EnvCert, EnvKey)
	}
	if cert != "" {
		for v, f := range map[string]string{EnvCert: cert, EnvKey: key} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("%s: %w", v, err)
			}
		}
		out = append(out, nats.ClientCert(cert, key))
	}
	return out, nil
}

// Redact hides the password of a NATS URL carrying credentials, for messages.
// A seed list (comma-separated URLs) is redacted URL by URL.
func Redact(natsURL string) string {
	parts := strings.Split(natsURL, ",")
	for i, p := range parts {
		u, err := neturl.Parse(strings.TrimSpace(p))
		if err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// DrainClose closes a connection gracefully: its subscriptions stop taking
// messages, the handlers running finish and their replies and publishes are
// flushed, then it closes (at the latest after timeout). A service's Stop
// uses it so a request it took is answered, not dropped.
func DrainClose(nc *nats.Conn, timeout time.Duration) {
	if nc == nil || nc.IsClosed() {
		return
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	deadline := time.Now().Add(timeout)
	for !nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	nc.Close()
}
