package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// whoami is the gateway's view of a credential.
type whoami struct{ *demarchev1.Principal }

func (w whoami) String() string {
	roles := make([]string, len(w.GetRoles()))
	for i, r := range w.GetRoles() {
		roles[i] = r.Slug()
	}
	s := fmt.Sprintf("%s (%s): roles %s; cleared for %s", w.GetSubject(), w.GetName(), strings.Join(roles, ", "), w.GetClearance().Slug())
	if w.GetPartner() != "" {
		s += "; partner " + w.GetPartner()
	}
	return s
}

func (c *apiClient) whoami(ctx context.Context) (whoami, error) {
	w := whoami{&demarchev1.Principal{}}
	return w, c.do(ctx, "GET", "/v1/whoami", nil, nil, w.Principal)
}

func newLoginCmd(app *App) *cobra.Command {
	var tokenFile, identity, dataDir string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Keep a credential for the operator commands (checked with the gateway first)",
		Long: `Keep the credential the operator commands (crisis, decide, controls, warning)
send to the gateway, in the user's config folder (0600). The token comes from
--token (your organisation's identity provider), --token-file, or, with
"demarche dev", --as one of its demo identities (duty, approver, roster,
analyst, auditor, ecowas, admin), read from the dev data folder.`,
		Example: `  demarche login --as duty                 # demarche dev's duty officer
  demarche login --as approver --data-dir .demarche
  demarche login --server https://demarche.example.org --token-file ~/token.jwt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case identity != "":
				b, err := os.ReadFile(filepath.Join(dataDir, "auth", identity+".token"))
				if err != nil {
					return fmt.Errorf("--as %s: no such demo identity in %s (is it a demarche dev data folder? see %s): %w", identity, dataDir, filepath.Join(dataDir, "auth", "identities.json"), err)
				}
				app.Token = strings.TrimSpace(string(b))
			case tokenFile != "":
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				app.Token = strings.TrimSpace(string(b))
			case app.Token == "":
				return fmt.Errorf("give a credential: --token, --token-file, or --as IDENTITY with demarche dev")
			}
			c, err := app.api()
			if err != nil {
				return err
			}
			who, err := c.whoami(cmd.Context())
			if err != nil {
				return fmt.Errorf("the gateway at %s refused the credential: %w", c.server, err)
			}
			path, err := saveCredentials(credentials{Server: c.server, Token: c.token})
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "signed in to %s as %s\ncredential kept in %s\n", c.server, who, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "read the token from this file")
	cmd.Flags().StringVar(&identity, "as", "", "demarche dev only: a demo identity (duty, approver, roster, analyst, auditor, ecowas, unowa, admin)")
	cmd.Flags().StringVar(&dataDir, "data-dir", EnvOr("DEMARCHE_DATA_DIR", ".demarche"), "demarche dev's data folder, for --as (env DEMARCHE_DATA_DIR)")
	return cmd
}

func newWhoamiCmd(app *App) *cobra.Command {
	var output outputFlag
	cmd := &cobra.Command{
		Use: "whoami", Short: "Show who the gateway takes you for (subject, roles, clearance)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := app.api()
			if err != nil {
				return err
			}
			who, err := c.whoami(cmd.Context())
			if err != nil {
				return err
			}
			return app.render(output, who.Principal, func() error {
				fmt.Fprintf(app.Out, "%s at %s\n", who, c.server)
				return nil
			})
		},
	}
	output.bind(cmd)
	return cmd
}

func newLogoutCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use: "logout", Short: "Forget the credential \"demarche login\" kept", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, err := credentialsFile()
			if err != nil {
				return err
			}
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				return err
			}
			fmt.Fprintln(app.Out, "signed out")
			return nil
		},
	}
}
