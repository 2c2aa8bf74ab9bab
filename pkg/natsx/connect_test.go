package natsx

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// Every Démarche client reads only its own inbox: the prefix comes from the
// URL's user, in every URL form a process is given.
func TestInboxPrefixFromTheUser(t *testing.T) {
	for url, want := range map[string]string{
		"nats://demarche-roster:pw@127.0.0.1:4222":                                "_INBOX_roster",
		"nats://demarche-observer:pw@n1:4222,nats://demarche-observer:pw@n2:4222": "_INBOX_observer",
		"nats://demarche-partner-AU:pw@n1:4222":                                   "_INBOX_partner-AU",
		"nats://127.0.0.1:4222":                                                   "",
		"nats://bench:pw@127.0.0.1:4222":                                          "",
		"nats://demarche-:pw@127.0.0.1:4222":                                      "",
	} {
		if got := InboxPrefix(url); got != want {
			t.Errorf("InboxPrefix(%s) = %q, want %q", Redact(url), got, want)
		}
		var opts nats.Options
		if err := InboxOption(url)(&opts); err != nil {
			t.Fatal(err)
		}
		if opts.InboxPrefix != want {
			t.Errorf("InboxOption(%s) sets %q, want %q", Redact(url), opts.InboxPrefix, want)
		}
	}
}
