package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
)

// partnerFlagOf maps a validated ack-role field to the flag that sets it.
var partnerFlagOf = map[string]string{
	"crisis_id": "--crisis", "ack.partner": "--partner", "ack.role": "--role", "ack.principal": "--as",
}

func newPartnerCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partner",
		Short: "Partner organisations: the registry, and role acknowledgements",
		Long: `Partner organisations (AU, ECOWAS, EU, OSCE, OAS, ...) receive their own copy of the
events of the crises shared with them (the crisis's public face, its stages, severity and
closure, their own role and sharing changes; never decisions, amounts, envoy or roster ids,
reasons or other organisations: docs/events.md says what each event carries for partners)
on demarche.partner.<PARTNER>.<region>.<country>.<crisis-id>.<event>
(its own stream ` + partners.StreamPrefix + `<PARTNER>) and, where configured, on a signed HTTP webhook.
Public crises reach every partner whose regions, countries and crisis types match;
restricted and confidential crises reach only the partners they are shared with
("demarche crisis open --share-with").

These commands reach the partners service through the gateway, as the identity of
your credential (a partner liaison acknowledges its own organisation's role only).`,
	}
	cmd.AddCommand(newPartnerListCmd(app), newPartnerAckRoleCmd(app), newPartnerValidateCmd(app))
	return cmd
}

func newPartnerListCmd(app *App) *cobra.Command {
	var output outputFlag
	cmd := &cobra.Command{Use: "list", Short: "List the partner organisations and what each receives", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list demarchev1.ListPartnersResponse
			if err := app.call(cmd.Context(), natsrpc.PartnersList, &demarchev1.ListPartnersRequest{}, &list); err != nil {
				return err
			}
			if asJSON, err := output.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				return app.printJSON(&list)
			}
			tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tTITLE\tREGIONS\tCOUNTRIES\tCRISIS TYPES\tMEMBERS\tWEBHOOK\tSUBJECTS")
			for _, p := range list.GetPartners() {
				var regions, types []string
				for _, r := range p.GetRegions() {
					regions = append(regions, r.Slug())
				}
				for _, t := range p.GetCrisisTypes() {
					types = append(types, t.Slug())
				}
				webhook := "-"
				if p.GetWebhook() {
					webhook = "yes"
				}
				kind := demarchev1.PartnerKind_PARTNER_KIND_REGIONAL_ORGANISATION // registries written before kinds
				if p.GetKind() != demarchev1.PartnerKind_PARTNER_KIND_UNSPECIFIED {
					kind = p.GetKind()
				}
				members := "-"
				if len(p.GetMembers()) > 0 {
					members = strings.Join(p.GetMembers(), ",")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.GetName(), kind.Slug(), p.GetTitle(), allIfEmpty(regions),
					allIfEmpty(p.GetCountries()), allIfEmpty(types), members, webhook, p.GetSubject())
			}
			return tw.Flush()
		}}
	output.bind(cmd)
	return cmd
}

func allIfEmpty(s []string) string {
	if len(s) == 0 {
		return "all"
	}
	return strings.Join(s, ",")
}

func newPartnerAckRoleCmd(app *App) *cobra.Command {
	var req demarchev1.AckRoleRequest
	var ack demarchev1.PartnerRoleAck
	var role string
	cmd := &cobra.Command{
		Use:   "ack-role",
		Short: "Acknowledge a partner's role in a crisis (lead, support, burden-sharing, joint, sequential)",
		Long: `Acknowledge a partner organisation's role in a crisis through the partners
service, which checks that the partner is registered, that the crisis is known and
that the partner may see it (public, or shared with it), then signals the crisis
workflow. "demarche crisis partner-role" signals the workflow directly, without
these checks.`,
		Example: "  demarche partner ack-role --partner ECOWAS --crisis GN-20261127-K7Q3P --role lead ",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Ack = &ack
			if role != "" {
				r, err := demarchev1.ParsePartnerRoleKind(role)
				if err != nil {
					return fmt.Errorf("--role: %s", reasonOf(err))
				}
				ack.Role = r
			}
			ack.Principal = "you" // the gateway puts the credential's subject here
			if err := req.Validate(); err != nil {
				return partnerFlagNames(err)
			}
			ack.Principal = ""
			var resp demarchev1.AckRoleResponse
			if err := app.call(cmd.Context(), natsrpc.PartnersAckRole, &req, &resp); err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "%s: %s acknowledged as %s by %s\n", resp.GetCrisisId(), resp.GetAck().GetPartner(),
				resp.GetAck().GetRole().Slug(), resp.GetAck().GetPrincipal())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&ack.Partner, "partner", "", "the partner organisation, e.g. ECOWAS (see \"demarche partner list\") (required)")
	fl.StringVar(&req.CrisisId, "crisis", "", "the crisis id, e.g. GN-20261127-K7Q3P (required)")
	fl.StringVar(&role, "role", "", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.PartnerRoleKind(0)), ", ")+" (required)")
	return cmd
}

func newPartnerValidateCmd(app *App) *cobra.Command {
	return &cobra.Command{Use: "validate FILE", Short: "Check a partners registry file; every problem is reported with its entry and field", Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := partners.LoadRegistry(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "%s: valid partners registry (%d partners)\n", args[0], len(r.Partners()))
			return nil
		}}
}

// newServePartnersCmd is "demarche serve partners": the partners service as its
// own process, signalling role acknowledgements through Temporal.
func newServePartnersCmd(app *App) *cobra.Command {
	var registry string
	cmd := &cobra.Command{
		Use:   "partners",
		Short: "Run the partners service: events to partner subjects and webhooks, role acknowledgements (NATS micro)",
		Long: `Run the partners service: it delivers each partner organisation its own copy of the
crisis events shared with it, cut down to what a partner may know (pkg/partnerview),
on demarche.partner.<PARTNER>.> (its own stream ` + partners.StreamPrefix + `<PARTNER>) and to its signed webhook,
never a restricted or confidential crisis unless shared with that partner, and
answers the "partners" NATS micro service (list, ack-role), signalling role
acknowledgements to the crisis workflow. The registry is built in unless --registry
names a JSON file ("demarche partner validate FILE" checks one).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
				sig, err := partners.DialSignaller(ctx, app.TemporalAddress, app.Namespace, app.Log)
				if err != nil {
					return nil, err
				}
				s, err := partners.Start(ctx, partners.Config{NATSURL: app.NATSURL, RegistryPath: registry}, sig, app.Log)
				if err != nil {
					sig.Close()
					return nil, err
				}
				return func() { s.Stop(); sig.Close() }, nil
			})
		},
	}
	cmd.Flags().StringVar(&registry, "registry", EnvOr("DEMARCHE_PARTNERS_REGISTRY", ""), "partners registry JSON file (env DEMARCHE_PARTNERS_REGISTRY; default: built in)")
	return cmd
}

// partnerFlagNames renames validated fields after the flags that set them.
func partnerFlagNames(err error) error { return namedByFlags(err, partnerFlagOf) }
