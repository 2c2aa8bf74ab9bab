package natsauth_test

import (
	"slices"
	"testing"

	"github.com/demarche/demarche/pkg/natsauth"
)

// TestSignalStoreIsEarlyWarningsAlone: the signal store (every accepted
// signal, EARLYWARNING_SIGNAL_STORE) is written and read by early warning's
// identity alone: nobody else may put a key, read one directly, or make an
// ordered consumer on its stream (people read it through the gateway's GET
// /v1/signals, which asks early warning's signals endpoint).
func TestSignalStoreIsEarlyWarningsAlone(t *testing.T) {
	outside := natsauth.DeployIdentities()
	stream := natsauth.KV(natsauth.SignalStoreBucket)
	for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
		p := natsauth.PermissionsOf(id, outside...)
		ew := id == natsauth.EarlyWarning
		prov := id == natsauth.Provisioner // manages every stream: $JS.API.>
		for s, want := range map[string]bool{
			"$KV.EARLYWARNING_SIGNAL_STORE.GN.intercommunal-violence.200905.acled.id.GIN1":       ew,
			"$JS.API.DIRECT.GET." + stream + ".$KV.EARLYWARNING_SIGNAL_STORE.GN.x.200905.a.id.1": ew || prov,
			"$JS.API.CONSUMER.CREATE." + stream + ".watch":                                       ew || prov,
			"$JS.API.STREAM.MSG.GET." + stream:                                                   prov,
			"$JS.API.STREAM.PURGE." + stream:                                                     prov,
			"demarche.earlywarning.signals":                                                      id == natsauth.Gateway,
		} {
			if got := allowed(p, s); got != want {
				t.Errorf("%s may publish on %s: %v, want %v", id, s, got, want)
			}
		}
	}
}
