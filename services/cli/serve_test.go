package cli

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn/oidctest"
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
