package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/apierror"
	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/errs"
)

// DefaultServer is the gateway of `demarche dev`.
const DefaultServer = "http://127.0.0.1:8080"

// credentials are what `demarche login` keeps in the user's config folder.
type credentials struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// credentialsFile is where `demarche login` keeps the credential (0600).
func credentialsFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config folder for the credential: %w (set DEMARCHE_TOKEN instead)", err)
	}
	return filepath.Join(dir, "demarche", "credentials.json"), nil
}

func loadCredentials() (credentials, error) {
	var c credentials
	path, err := credentialsFile()
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func saveCredentials(c credentials) (string, error) {
	path, err := credentialsFile()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, b, 0o600)
}

// apiClient calls the gateway with the user's credential: the CLI's
// operator verbs are clients of the one door, like any other.
type apiClient struct {
	server string
	token  string
	http   *http.Client
}

// api is the gateway client for a command: --server/--token (or
// DEMARCHE_SERVER/DEMARCHE_TOKEN), else what `demarche login` stored.
func (a *App) api() (*apiClient, error) {
	server, token := a.Server, a.Token
	if token == "" || server == "" {
		// A --token without --server goes where `demarche login` stored,
		// not to the default port: the token was issued for that gateway,
		// and whatever listens on 127.0.0.1:8080 must not receive it.
		c, err := loadCredentials()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if token == "" {
			token = c.Token
		}
		if server == "" {
			server = c.Server
		}
	}
	if server == "" {
		server = DefaultServer
	}
	if token == "" {
		return nil, fmt.Errorf("%w: no credential: run \"demarche login\" (with demarche dev: demarche login --as duty), or set --token / DEMARCHE_TOKEN", errs.ErrUnauthenticated)
	}
	return &apiClient{server: strings.TrimRight(server, "/"), token: token, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// do sends a request (body: a proto message or nil) and decodes the answer
// into out (a proto message, or anything encoding/json takes).
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body proto.Message, out any, header ...string) error {
	var rd io.Reader
	if body != nil {
		b, err := apijson.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := c.server + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (is the platform running? start it with \"demarche dev\", or set --server)", errs.ErrUnavailable, c.server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		// The gateway's error body, read by the one parser the console
		// shares; the error matches the sentinel of its status.
		ae := apierror.Parse(resp.StatusCode, b)
		if ae.Msg == "" { // not the gateway's body: say which request
			return fmt.Errorf("%s %s: %w", method, path, ae)
		}
		return ae
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte: // the answer as it came (a CSV or HTML report)
		*o = b
		return nil
	case proto.Message:
		return apijson.UnmarshalLenient(b, o)
	default:
		return json.Unmarshal(b, o)
	}
}
