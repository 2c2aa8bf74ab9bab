// Package natsx connects Démarche processes to NATS the same way everywhere.
package natsx

import (
	"fmt"
	neturl "net/url"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Connect dials NATS and keeps reconnecting for ever after a drop: a service
// outlives a NATS restart. The first dial must succeed, so a wrong URL fails fast.
func Connect(url, name string, log *zap.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.Timeout(5*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", zap.String("url", c.ConnectedUrlRedacted())) }),
	)
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

// Redact hides the password of a NATS URL carrying credentials, for messages.
func Redact(natsURL string) string {
	u, err := neturl.Parse(natsURL)
	if err != nil || u.User == nil {
		return natsURL
	}
	return u.Redacted()
}
