package temporalembed

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/labstack/echo/v4"
	uiserver "github.com/temporalio/ui-server/v2/server"
	uiapi "github.com/temporalio/ui-server/v2/server/api"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"

	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/temporalx"
)

// UI is a running Temporal Web UI, read-only: auditors browse histories in
// the tool they know; operators steer crises through Démarche, not the UI.
type UI struct {
	srv  *uiserver.Server
	addr string
}

// StartUI serves the Temporal Web UI for the frontend at temporalHostPort,
// on a loopback address only (it reads every crisis's history and has no
// sign-in of its own), dialling the frontend with tlsFiles when set.
// port 0 picks a free port; a taken port is an error naming flag.
func StartUI(host string, port int, flag, temporalHostPort, namespace string, tlsFiles temporalx.TLSFiles, opts ...UIOption) (*UI, error) {
	var o uiOptions
	for _, opt := range opts {
		opt(&o)
	}
	if ip := net.ParseIP(host); !o.anyHost && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("temporal UI: listens on a loopback address only (asked for %s)", host)
	}
	port, err := ports.CheckOrPick(host, port, flag)
	if err != nil {
		return nil, fmt.Errorf("temporal UI: %w", err)
	}
	var serverOpts []uiserveroptions.ServerOption
	if o.apiKey != "" {
		// Every API call the UI makes for the browser carries the UI's own
		// key (the observer's: the authorizer lets it read, nothing more),
		// never one the browser sent.
		key := o.apiKey
		serverOpts = append(serverOpts, uiserveroptions.WithAPIMiddleware([]uiapi.Middleware{func(c echo.Context) runtime.ServeMuxOption {
			c.Request().Header.Set("Authorization", "Bearer "+key)
			return func(*runtime.ServeMux) {}
		}}))
	}
	srv := uiserver.NewServer(append(serverOpts, uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host: host, Port: port, TemporalGRPCAddress: temporalHostPort, EnableUI: true,
		DefaultNamespace: namespace, DisableWriteActions: true, HideLogs: true, DisableNewsFetch: true,
		CORS: uiconfig.CORS{CookieInsecure: true},
		// The browser sends the codec endpoint the gateway's console
		// session cookie (includeCredentials): the UI has no sign-in of its
		// own, and the endpoint decrypts for auditors only.
		Codec: uiconfig.Codec{Endpoint: o.codecEndpoint, IncludeCredentials: o.codecEndpoint != "",
			DefaultErrorMessage: "Encrypted payload: sign in to the Démarche console as an auditor (same host) to read it here."},
		TLS: uiconfig.TLS{CaFile: tlsFiles.CAFile, CertFile: tlsFiles.CertFile, KeyFile: tlsFiles.KeyFile,
			ServerName: tlsFiles.ServerName, EnableHostVerification: tlsFiles.Enabled()},
	}))...)
	ui := &UI{srv: srv, addr: "http://" + host + ":" + strconv.Itoa(port)}
	// Start blocks; the port was checked free just above, so its only exit is Stop.
	go func() { _ = srv.Start() }()
	probe := ui.addr
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		probe = "http://127.0.0.1:" + strconv.Itoa(port)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(probe + "/")
		if err == nil {
			resp.Body.Close()
			return ui, nil
		}
		if time.Now().After(deadline) {
			srv.Stop()
			return nil, errors.Join(fmt.Errorf("temporal UI on %s not ready after 15s", ui.addr), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// UIOption changes how StartUI configures the UI.
type UIOption func(*uiOptions)

type uiOptions struct {
	codecEndpoint, apiKey string
	anyHost               bool
}

// WithAnyHost lets the UI listen beyond loopback: for a deployment that puts
// it behind its own access control (a container's port, an ingress with
// sign-in). It stays read-only: it can do what its key's identity may.
func WithAnyHost() UIOption { return func(o *uiOptions) { o.anyHost = true } }

// WithAPIKey makes the UI call the frontend with this API key (its identity:
// the observer's, read-only).
func WithAPIKey(key string) UIOption { return func(o *uiOptions) { o.apiKey = key } }

// WithCodecEndpoint points the UI at a remote codec (Temporal's codec
// protocol: ENDPOINT/decode), which decrypts encrypted payloads for display.
func WithCodecEndpoint(url string) UIOption { return func(o *uiOptions) { o.codecEndpoint = url } }

// URL is where the UI answers.
func (u *UI) URL() string { return u.addr }

// Stop stops the UI.
func (u *UI) Stop() { u.srv.Stop() }
