package partners

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
)

// PartnerHeader names the partner a webhook delivery is for.
const PartnerHeader = "X-Demarche-Partner"

// webhookHandler POSTs each event of one partner to its webhook. An error makes
// the consumer retry with backoff, then dead-letter the event.
func (s *Service) webhookHandler(p *Partner) eventbus.Handler {
	log := s.log.With(zap.String("partner", p.Name))
	return func(ctx context.Context, ev eventbus.Event) error {
		req, err := WebhookRequest(ctx, p.Webhook.URL, p.Webhook.secret, p.Name, ev, s.cfg.Now())
		if err != nil {
			return fmt.Errorf("%w: %w", err, eventbus.ErrPermanent)
		}
		ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
		defer cancel()
		resp, err := s.cfg.HTTPClient.Do(req.WithContext(ctx))
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrWebhook, p.Name, err)
		}
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))     // the first bytes only illustrate the error; the status decides
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // draining lets the connection be reused; a failure only costs the connection
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("%w: %s answered %s: %s", ErrWebhook, p.Name, resp.Status, strings.TrimSpace(string(snippet)))
		}
		log.Debug("webhook delivered", zap.String("event_id", ev.ID), zap.Int("status", resp.StatusCode))
		return nil
	}
}

// WebhookRequest builds the HTTP request of one event in CloudEvents HTTP
// binary mode: attributes as ce-* headers, protobuf data as the body, plus the
// partner's name and the signature header.
func WebhookRequest(ctx context.Context, url string, secret []byte, partner string, ev eventbus.Event, now time.Time) (*http.Request, error) {
	msg, err := eventbus.Encode("webhook", ev)
	if err != nil {
		return nil, fmt.Errorf("webhook request for %s: %w", partner, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(msg.Data))
	if err != nil {
		return nil, fmt.Errorf("webhook request for %s: %w", partner, err)
	}
	for _, h := range []string{eventbus.HeaderSpecVersion, eventbus.HeaderID, eventbus.HeaderSource, eventbus.HeaderType,
		eventbus.HeaderTime, eventbus.HeaderSubject, eventbus.HeaderDataSchema} {
		req.Header.Set(h, msg.Header.Get(h))
	}
	req.Header.Set("Content-Type", eventbus.ContentTypeData)
	req.Header.Set(PartnerHeader, partner)
	req.Header.Set(SignatureHeader, Sign(secret, msg.Data, now))
	return req, nil
}
