package temporalx

import (
	"sync"

	"github.com/demarche/demarche/pkg/payloadcodec"
)

// The payload codec every Temporal client of a process uses (see package
// payloadcodec): with a keyring, what a client sends the server is
// encrypted and what it reads back is decrypted.
//
// Every Démarche payload is encrypted when a key is configured, not only
// those of restricted and confidential crises: a crisis classified public by
// mistake, or restricted after it opened, would otherwise have left its
// first payloads in clear on the shared cluster; and the stage workflows,
// signals and activity failures of one crisis need no classification lookup
// at the gRPC layer, where the SDK's workflow context is not available.
var (
	codecMu      sync.Mutex
	defaultCodec *payloadcodec.Keyring
	codecByAddr  = map[string]*payloadcodec.Keyring{}
)

// SetDefaultCodec sets the keyring every Dial of this process uses (nil:
// none). The CLI calls it once from its --codec-key flags.
func SetDefaultCodec(k *payloadcodec.Keyring) {
	codecMu.Lock()
	defer codecMu.Unlock()
	defaultCodec = k
}

// SetCodecFor makes every Dial of hostPort use k, whatever the process
// default; the returned func undoes it. An embedded stack registers its own
// frontend's address, so stacks with and without a key share a test process.
func SetCodecFor(hostPort string, k *payloadcodec.Keyring) func() {
	codecMu.Lock()
	defer codecMu.Unlock()
	codecByAddr[hostPort] = k
	return func() {
		codecMu.Lock()
		defer codecMu.Unlock()
		delete(codecByAddr, hostPort)
	}
}

// CodecFor is the keyring a Dial of hostPort uses (nil: none). The gateway's
// codec endpoint serves the same one.
func CodecFor(hostPort string) *payloadcodec.Keyring {
	codecMu.Lock()
	defer codecMu.Unlock()
	if k, ok := codecByAddr[hostPort]; ok {
		return k
	}
	return defaultCodec
}
