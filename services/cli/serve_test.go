package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn/oidctest"
	"github.com/demarche/demarche/pkg/tracing"
)

// TestServeGatewayConsoleFlags: the console's sign-in needs the issuer the
// API trusts, and both its client id and its redirect URL.
func TestServeGatewayConsoleFlags(t *testing.T) {
	idp := oidctest.New("c", "s", map[string]any{"sub": "x"}, oidctest.Options{})
	defer idp.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dev-issuer", t.TempDir(), "--console-client-id", "c", "--console-redirect-url", "http://127.0.0.1:1/console/oidc/callback"}, "--console-client-id needs --oidc-issuer"},
		{[]string{"--oidc-issuer", idp.URL, "--console-client-id", "c"}, "needs both --console-client-id and --console-redirect-url"},
		{[]string{"--oidc-issuer", idp.URL, "--console-redirect-url", "http://127.0.0.1:1/console/oidc/callback"}, "needs both --console-client-id and --console-redirect-url"},
		{[]string{"--oidc-issuer", idp.URL, "--console-client-id", "c", "--console-redirect-url", "http://127.0.0.1:1/console/oidc/callback", "--console-client-secret-file", "/nonexistent/secret"}, "--console-client-secret-file"},
	} {
		cmd := newServeGatewayCmd(&App{Log: zap.NewNop()})
		cmd.SetArgs(tc.args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// TestServeOTLPEndpoint: --otlp-endpoint (or the standard variables, the
// traces' own first) is checked before the service starts, and a bad one is
// refused naming the flag, the value and what is allowed.
func TestServeOTLPEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name, flag, env, tracesEnv, want string
	}{
		{name: "flag", flag: "localhost", want: `"localhost"`},
		{name: "env", env: "ftp://collector:4317", want: `"ftp://collector:4317"`},
		{name: "traces env first", env: "collector:4317", tracesEnv: "collector", want: `"collector"`},
		{name: "flag over env", flag: "collector:99999", env: "collector:4317", want: `"collector:99999"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.env)
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tc.tracesEnv)
			cmd := newServeCmd(&App{Log: zap.NewNop()})
			args := []string{"eventlog", "--metrics-listen", ""}
			if tc.flag != "" {
				args = append(args, "--otlp-endpoint", tc.flag)
			}
			cmd.SetArgs(args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.ExecuteContext(context.Background())
			if !errors.Is(err, tracing.ErrBadEndpoint) || !strings.Contains(err.Error(), "--otlp-endpoint") || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "host:port") {
				t.Errorf("serve eventlog %v: %v; want --otlp-endpoint refused naming %s and what is allowed", args, err, tc.want)
			}
		})
	}
}
