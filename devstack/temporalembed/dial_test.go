package temporalembed_test

import (
	"context"
	"crypto/tls"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/demarche/demarche/pkg/temporalx"
)

// dialCAOnly is a TLS client that trusts the server and presents no certificate.
func dialCAOnly(ctx context.Context, hostPort, caFile string) (interface {
	Close()
	WorkflowService() workflowservice.WorkflowServiceClient
}, error) {
	pool, err := temporalx.CAPool(caFile)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return client.DialContext(ctx, client.Options{HostPort: hostPort, Namespace: "demarche",
		ConnectionOptions: client.ConnectionOptions{TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}})
}
