package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/temporalx"
)

// Default names on the servers' certificates: the hosts compose and
// deploy/k8s dial (compose's nats-1..3 and temporal; the nats chart's
// nats-N.nats-headless and the Service temporal-frontend), and loopback.
var (
	defaultNATSHosts     = []string{"nats-1", "nats-2", "nats-3", "nats", "*.nats-headless", "*.nats-headless.demarche.svc", "*.nats-headless.demarche.svc.cluster.local", "localhost", "127.0.0.1"}
	defaultTemporalHosts = []string{"temporal", "temporal-frontend", "temporal-frontend.demarche.svc", "localhost", "127.0.0.1"}
)

func newAdminCertificatesCmd(app *App) *cobra.Command {
	var dir string
	var natsHosts, temporalHosts []string
	var days int
	cmd := &cobra.Command{
		Use:   "certificates",
		Short: "Make the mutual-TLS certificates of NATS and Temporal: a CA each, the servers', one client certificate per identity (idempotent)",
		Long: `Make, in --dir, what compose and deploy/k8s mount for mutual TLS:

  nats-tls/      ca.pem (+ ca-key.pem, keep it offline), server.pem + server-key.pem
                 (the names of --nats-host; server and client use: a NATS route
                 presents it both ways), and <identity>.pem + <identity>-key.pem for
                 every NATS identity (services, provisioner, operator, observer,
                 partners, signal sources): a NATS server that verifies clients
                 refuses a connection without one.
  temporal-tls/  the same for Temporal: the server's certificate names --temporal-host,
                 and one client certificate per Temporal identity (admin, observer,
                 auditor and each service).

Files already there are kept, so a second run changes nothing, and a deleted
client certificate is re-issued by the CA that is there (delete ca.pem and
ca-key.pem to start a new CA: every certificate must then be re-issued).
Keys are ECDSA P-256, mode 0600; certificates are valid --days days (the CA
ten times as long). Production may use its own PKI (cert-manager, an internal
CA) instead: deploy/README.md lists the names each file must carry.`,
		Example: "  demarche admin certificates --dir deploy/compose/secrets\n" +
			"  demarche admin certificates --dir deploy/k8s/secrets --nats-host '*.nats-headless' --nats-host '*.nats-headless.demarche.svc.cluster.local'   # names of your own instead of the defaults",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return fmt.Errorf("--days %d: a certificate must be valid at least one day", days)
			}
			validity := time.Duration(days) * 24 * time.Hour
			var natsClients []string
			for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
				natsClients = append(natsClients, string(id))
			}
			for _, set := range []struct {
				sub     string
				hosts   []string
				clients []string
			}{
				{"nats-tls", natsHosts, natsClients},
				{"temporal-tls", temporalHosts, temporalx.Identities},
			} {
				made, err := ensurePKI(filepath.Join(dir, set.sub), set.hosts, set.clients, validity)
				if err != nil {
					return err
				}
				fmt.Fprintf(app.Out, "%s: %d certificates made, the others kept (ca.pem, server.pem for %v, one client certificate per identity)\n",
					filepath.Join(dir, set.sub), made, set.hosts)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "secrets", "folder to write nats-tls/ and temporal-tls/ in (the same as admin credentials')")
	cmd.Flags().StringSliceVar(&natsHosts, "nats-host", defaultNATSHosts, "a name (or IP) on the NATS servers' certificate: every host clients and routes dial; repeat it")
	cmd.Flags().StringSliceVar(&temporalHosts, "temporal-host", defaultTemporalHosts, "a name (or IP) on the Temporal server's certificate (the host of --temporal-address, or --tls-server-name); repeat it")
	cmd.Flags().IntVar(&days, "days", 365, "how long the server and client certificates are valid")
	return cmd
}

// ensurePKI makes, in dir, a CA (unless there is one), a server certificate
// for hosts and a client certificate per client, keeping every file already
// there. It returns how many certificates it made.
func ensurePKI(dir string, hosts, clients []string, validity time.Duration) (int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("certificates folder %s: %w", dir, err)
	}
	made := 0
	caFile, caKeyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if _, err := os.Stat(caFile); errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return 0, err
		}
		tpl, err := certTemplate("Démarche "+filepath.Base(dir)+" CA", 10*validity)
		if err != nil {
			return 0, err
		}
		tpl.IsCA, tpl.BasicConstraintsValid, tpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageCRLSign
		der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
		if err != nil {
			return 0, fmt.Errorf("CA of %s: %w", dir, err)
		}
		if err := writeKeyPair(caFile, caKeyFile, der, key); err != nil {
			return 0, err
		}
		made++
	}
	ca, caKey, err := loadCA(caFile, caKeyFile)
	if err != nil {
		return 0, err
	}
	issue := func(name string, tpl *x509.Certificate) error {
		cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		if _, err := os.Stat(cert); err == nil {
			return nil
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", cert, err)
		}
		made++
		return writeKeyPair(cert, key, der, k)
	}
	srv, err := certTemplate("Démarche "+filepath.Base(dir)+" server", validity)
	if err != nil {
		return 0, err
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			srv.IPAddresses = append(srv.IPAddresses, ip)
		} else {
			srv.DNSNames = append(srv.DNSNames, h)
		}
	}
	srv.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if err := issue("server", srv); err != nil {
		return 0, err
	}
	for _, c := range clients {
		if c == "server" || c == "ca" {
			return 0, fmt.Errorf("identity %q: the name of a file of %s", c, dir)
		}
		tpl, err := certTemplate(c, validity)
		if err != nil {
			return 0, err
		}
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if err := issue(c, tpl); err != nil {
			return 0, err
		}
	}
	return made, nil
}

func certTemplate(cn string, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"Démarche"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity)}, nil
}

func writeKeyPair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyFile, err)
	}
	// Written after its key: a certificate present means its key is too.
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", certFile, err)
	}
	return nil
}

func loadCA(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("the CA's key (to issue the missing certificates): %w", err)
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("%s or %s: not PEM", certFile, keyFile)
	}
	ca, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certFile, err)
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	return ca, key, nil
}
