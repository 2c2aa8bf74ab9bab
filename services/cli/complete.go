package cli

// Shell completion of the flags that take ids the platform knows: roster ids
// (the decision flags whose source is the roster: --envoy, --standby-team,
// --team) and partner organisations
// (--with, --unshare). Each asks the gateway, as the user's credential, at
// the moment of completing; when it cannot (no credential, platform down,
// a role that may not read the roster) it offers nothing rather than fail.

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// completionTimeout bounds one completion's request: a shell waits on it.
const completionTimeout = 3 * time.Second

// registerRosterCompletion completes the decision verb's flags that take
// roster ids (the inputs whose source is the roster, with their kind of
// expert: --envoy senior envoys, --standby-team standby experts, --team any).
func (a *App) registerRosterCompletion(cmd *cobra.Command, form *demarchev1.DecisionForm) {
	for _, in := range form.Inputs {
		if in.Source != demarchev1.DecisionInputSource_DECISION_INPUT_SOURCE_ROSTER {
			continue
		}
		kind := demarchev1.ExpertKind_EXPERT_KIND_UNSPECIFIED
		if in.ExpertKind != "" {
			kind, _ = demarchev1.ParseExpertKind(in.ExpertKind) // the schema's test checks it parses
		}
		// The flag exists (bound from the same form): no error to handle.
		_ = cmd.RegisterFlagCompletionFunc(in.Flag, a.completeRoster(kind))
	}
}

func completionContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, completionTimeout)
}

// completeRoster offers the roster's available experts of a kind, as
// "id<TAB>name, kind" (shells show the description beside the id).
func (a *App) completeRoster(kind demarchev1.ExpertKind) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel := completionContext(cmd)
		defer cancel()
		var res demarchev1.ExpertsResponse
		if err := a.call(ctx, natsrpc.RosterExperts, &demarchev1.AssignmentsRequest{}, &res); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var ids []cobra.Completion
		for _, e := range res.GetExperts() {
			if !e.GetAvailable() || (kind != demarchev1.ExpertKind_EXPERT_KIND_UNSPECIFIED && e.GetKind() != kind) {
				continue
			}
			ids = append(ids, cobra.CompletionWithDesc(e.GetId(), e.GetName()+", "+e.GetKind().Slug()))
		}
		return inList(ids, toComplete)
	}
}

// completePartners offers the registered partner organisations.
func (a *App) completePartners(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx, cancel := completionContext(cmd)
	defer cancel()
	var list demarchev1.ListPartnersResponse
	if err := a.call(ctx, natsrpc.PartnersList, &demarchev1.ListPartnersRequest{}, &list); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var names []cobra.Completion
	for _, p := range list.GetPartners() {
		names = append(names, cobra.CompletionWithDesc(p.GetName(), p.GetTitle()))
	}
	return inList(names, toComplete)
}

// inList completes the last element of a comma-separated list: "a,b,c"
// offers "a,b,<each candidate starting with c>" (names already given are
// not offered again).
func inList(candidates []cobra.Completion, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	head, last := "", toComplete
	if i := strings.LastIndex(toComplete, ","); i >= 0 {
		head, last = toComplete[:i+1], toComplete[i+1:]
	}
	given := map[string]bool{}
	for _, g := range strings.Split(head, ",") {
		given[strings.ToUpper(g)] = true
	}
	var out []cobra.Completion
	for _, c := range candidates {
		id, _, _ := strings.Cut(c, "\t")
		if given[strings.ToUpper(id)] || !strings.HasPrefix(strings.ToLower(id), strings.ToLower(last)) {
			continue
		}
		out = append(out, head+c)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
