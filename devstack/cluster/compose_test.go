package cluster_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
)

const composeDir = "../../deploy/compose"

// composeNATSTLS are where compose mounts a NATS node's TLS files (its
// secrets nats-tls-server, nats-tls-server-key, nats-tls-ca).
var composeNATSTLS = cluster.NATSTLS{
	CertFile: "/run/secrets/nats-tls/server.pem",
	KeyFile:  "/run/secrets/nats-tls/server-key.pem",
	CAFile:   "/run/secrets/nats-tls/ca.pem",
}

// composeFile is the part of the compose specification checked here.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	EnvFile     []string          `yaml:"env_file"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Secrets     []struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	} `yaml:"secrets"`
	DependsOn   any `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeNodes are the NATS nodes as the compose network names them.
func composeNodes() []cluster.Endpoint {
	var out []cluster.Endpoint
	for _, n := range cluster.NATSNodes {
		out = append(out, cluster.Endpoint{Host: n, Bind: "0.0.0.0", ClientPort: cluster.NATSClientPort, ClusterPort: cluster.NATSClusterPort, Monitor: cluster.NATSMonitorPort})
	}
	return out
}

// The NATS nodes' configuration files are generated from the topology (what
// the cluster test writes for its loopback nodes); DEMARCHE_UPDATE_DEPLOY=1
// rewrites them.
func TestComposeNATSConfigsAreGenerated(t *testing.T) {
	nodes := composeNodes()
	for i, n := range cluster.NATSNodes {
		want := cluster.NATSServerConfigTLS(n, nodes[i], nodes, "/data/jetstream", "authorization.conf", composeNATSTLS)
		file := filepath.Join(composeDir, "nats", n+".conf")
		if os.Getenv("DEMARCHE_UPDATE_DEPLOY") == "1" {
			if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is not what devstack/cluster.NATSServerConfig generates: run DEMARCHE_UPDATE_DEPLOY=1 go test ./devstack/cluster", file)
		}
	}
	// nats-server's own parser accepts them, with the users they include.
	auth, err := os.ReadFile("../../deploy/nats/authorization.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	creds := map[natsauth.Identity]natsauth.Credentials{}
	for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		creds[id] = natsauth.Credentials{Identity: id, Password: "pw"}
	}
	if err := natsauth.WritePasswords(dir, creds); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorization.conf"), auth, 0o644); err != nil {
		t.Fatal(err)
	}
	// The same configuration with TLS files that exist here (nats-server loads them).
	pki := writeTestPKI(t, filepath.Join(dir, "tls"), cluster.NATSNodes, nil)
	for i, n := range cluster.NATSNodes {
		conf := filepath.Join(dir, n+".conf")
		if err := os.WriteFile(conf, []byte(cluster.NATSServerConfigTLS(n, nodes[i], nodes, "/data/jetstream", "authorization.conf", pki.natsTLS())), 0o644); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("nats-server refuses %s: %v", n, err)
		}
		if opts.ServerName != n || !opts.JetStream || opts.SyncAlways != true || opts.Cluster.Name != cluster.NATSClusterName || len(opts.Routes) != len(nodes) || len(opts.Users) == 0 {
			t.Errorf("%s: server %q, jetstream %v, sync always %v, cluster %q, %d routes, %d users", n, opts.ServerName, opts.JetStream, opts.SyncAlways, opts.Cluster.Name, len(opts.Routes), len(opts.Users))
		}
		// TLS on every client connection and every route, certificates verified both ways.
		if opts.TLSConfig == nil || opts.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert || opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("%s: client TLS %v, route TLS %v: want both, client certificates required and verified", n, opts.TLSConfig != nil, opts.Cluster.TLSConfig != nil)
		}
	}
}

// The compose file describes the topology the multi-process cluster test
// runs: the same services with the same commands, each with its own NATS
// credentials and nothing else's, the NATS cluster with its seed list, the
// Temporal server on PostgreSQL, the UI, and provisioning with 3 replicas.
func TestComposeMatchesTopology(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(composeDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	seed := cluster.SeedList(composeNodes())
	errorf := func(service, format string, args ...any) {
		t.Helper()
		t.Errorf("compose.yaml service %s: %s", service, fmt.Sprintf(format, args...))
	}
	// secretTarget is where a service gets a secret, "" when it does not.
	secretTarget := func(s composeService, source string) string {
		for _, sec := range s.Secrets {
			if sec.Source == source {
				return sec.Target
			}
		}
		return ""
	}
	natsSecrets := func(s composeService) []string {
		var out []string
		for _, sec := range s.Secrets {
			if strings.HasPrefix(sec.Source, "nats-") && !strings.HasPrefix(sec.Source, "nats-tls-") {
				out = append(out, sec.Source)
			}
		}
		return out
	}
	// checkClientCert: a client of an engine ("nats", "temporal") over mutual
	// TLS mounts the CA and its own identity's certificate and key, no other's,
	// at /run/secrets/<engine>-tls/, from secrets/<engine>-tls/<identity>.pem.
	checkClientCert := func(name string, s composeService, engine, identity string, env map[string]string) {
		dir := "/run/secrets/" + engine + "-tls/"
		for v, file := range env {
			if got := s.Environment[v]; got != dir+file {
				errorf(name, "%s %q, want %s%s (%s over mutual TLS)", v, got, dir, file, engine)
			}
		}
		for source, want := range map[string][2]string{
			engine + "-tls-ca":                   {dir + "ca.pem", "secrets/" + engine + "-tls/ca.pem"},
			engine + "-tls-" + identity:          {dir + "client.pem", "secrets/" + engine + "-tls/" + identity + ".pem"},
			engine + "-tls-" + identity + "-key": {dir + "client-key.pem", "secrets/" + engine + "-tls/" + identity + "-key.pem"},
		} {
			if got := secretTarget(s, source); got != want[0] {
				errorf(name, "secret %s mounted at %q, want %q", source, got, want[0])
			}
			if f := cf.Secrets[source].File; f != want[1] {
				errorf(name, "secret %s comes from %q, want %s", source, f, want[1])
			}
		}
		for _, sec := range s.Secrets {
			if rest, ok := strings.CutPrefix(sec.Source, engine+"-tls-"); ok && rest != "ca" && rest != identity && rest != identity+"-key" {
				errorf(name, "mounts %s: a client gets its own identity's %s certificate alone (%s)", sec.Source, engine, identity)
			}
		}
	}
	checkCreds := func(name string, s composeService, id natsauth.Identity) {
		source := "nats-" + string(id)
		if got := s.Environment["DEMARCHE_NATS_CREDS"]; got != cluster.CredentialsFile(id) {
			errorf(name, "DEMARCHE_NATS_CREDS %q, want %q (its own identity's)", got, cluster.CredentialsFile(id))
		}
		if got := secretTarget(s, source); got != cluster.CredentialsFile(id) {
			errorf(name, "secret %s mounted at %q, want %q", source, got, cluster.CredentialsFile(id))
		}
		if got := natsSecrets(s); !slices.Equal(got, []string{source}) {
			errorf(name, "NATS credentials mounted %v: a service gets its own identity's alone (%s)", got, source)
		}
		if f := cf.Secrets[source].File; f != "secrets/"+string(id)+".creds" {
			errorf(name, "secret %s comes from %q, want secrets/%s.creds (demarche admin credentials writes it)", source, f, id)
		}
		if got := s.Environment["DEMARCHE_NATS_URL"]; got != seed {
			errorf(name, "DEMARCHE_NATS_URL %q, want the cluster's seed list %q", got, seed)
		}
		// NATS over mutual TLS: the CA of the servers and its own client certificate.
		checkClientCert(name, s, "nats", string(id), map[string]string{
			natsx.EnvCA: "ca.pem", natsx.EnvCert: "client.pem", natsx.EnvKey: "client-key.pem"})
	}
	checkTemporal := func(name string, s composeService, identity string) {
		// Its own Temporal identity's API key, and no other's.
		source := "temporal-key-" + identity
		if got := s.Environment["DEMARCHE_TEMPORAL_KEY_FILE"]; got != cluster.TemporalKeyFile {
			errorf(name, "DEMARCHE_TEMPORAL_KEY_FILE %q, want %q", got, cluster.TemporalKeyFile)
		}
		if got := secretTarget(s, source); got != cluster.TemporalKeyFile {
			errorf(name, "secret %s mounted at %q, want %q", source, got, cluster.TemporalKeyFile)
		}
		for _, sec := range s.Secrets {
			if strings.HasPrefix(sec.Source, "temporal-key-") && sec.Source != source {
				errorf(name, "mounts %s: a service gets its own Temporal identity's key alone (%s)", sec.Source, source)
			}
		}
		if f := cf.Secrets[source].File; f != "secrets/temporal-credentials/"+identity+".key" {
			errorf(name, "secret %s comes from %q, want secrets/temporal-credentials/%s.key (demarche admin credentials writes it)", source, f, identity)
		}
		if got := s.Environment["DEMARCHE_TEMPORAL_ADDRESS"]; got != fmt.Sprintf("temporal:%d", cluster.TemporalPort) {
			errorf(name, "DEMARCHE_TEMPORAL_ADDRESS %q, want temporal:%d", got, cluster.TemporalPort)
		}
		for _, v := range []string{"DEMARCHE_TEMPORAL_TLS_CERT", "DEMARCHE_TEMPORAL_TLS_KEY", "DEMARCHE_TEMPORAL_TLS_CA"} {
			if !strings.HasPrefix(s.Environment[v], "/run/secrets/temporal-tls/") {
				errorf(name, "%s %q: the Temporal frontend takes mTLS clients only", v, s.Environment[v])
			}
		}
		// Its own client certificate (one per Temporal identity, as its key).
		checkClientCert(name, s, "temporal", identity, map[string]string{
			"DEMARCHE_TEMPORAL_TLS_CA": "ca.pem", "DEMARCHE_TEMPORAL_TLS_CERT": "client.pem", "DEMARCHE_TEMPORAL_TLS_KEY": "client-key.pem"})
	}

	// Every Démarche service, as the topology (and the cluster test) runs it.
	var serving []string
	for name, s := range cf.Services {
		if len(s.Command) > 0 && s.Command[0] == "serve" {
			serving = append(serving, name)
		}
	}
	var want []string
	for _, svc := range cluster.Services {
		want = append(want, svc.Name)
		s, ok := cf.Services[svc.Name]
		if !ok {
			t.Errorf("compose.yaml has no service %s (devstack/cluster.Services runs it)", svc.Name)
			continue
		}
		wantCmd := append([]string{"serve", svc.Name}, svc.Args...)
		if svc.Name == "gateway" {
			wantCmd = append(wantCmd, "--host", "0.0.0.0", "--port", fmt.Sprint(cluster.GatewayPort))
			if !slices.Contains(s.Ports, fmt.Sprintf("%d:%d", cluster.GatewayPort, cluster.GatewayPort)) {
				errorf(svc.Name, "ports %v do not publish %d", s.Ports, cluster.GatewayPort)
			}
			if s.Environment["DEMARCHE_OIDC_ISSUER"] == "" {
				errorf(svc.Name, "no DEMARCHE_OIDC_ISSUER: the gateway needs the organisation's token issuer")
			}
			if s.Environment["DEMARCHE_PUBLIC_URL"] == "" {
				errorf(svc.Name, "no DEMARCHE_PUBLIC_URL: the gateway answers to that host alone (DNS rebinding)")
			}
		}
		if !slices.Equal(s.Command, wantCmd) {
			errorf(svc.Name, "command %q, want %q", s.Command, wantCmd)
		}
		checkCreds(svc.Name, s, svc.Identity)
		if svc.Temporal {
			checkTemporal(svc.Name, s, svc.Name)
		} else if _, ok := s.Environment["DEMARCHE_TEMPORAL_ADDRESS"]; ok || secretTarget(s, "temporal-tls-ca") != "" {
			errorf(svc.Name, "reaches Temporal, which it does not need")
		}
		if got := s.Environment["DEMARCHE_HEALTH_LISTEN"]; got != fmt.Sprintf("0.0.0.0:%d", cluster.HealthPort) {
			errorf(svc.Name, "DEMARCHE_HEALTH_LISTEN %q, want 0.0.0.0:%d", got, cluster.HealthPort)
		}
		if got := s.Environment["DEMARCHE_METRICS_LISTEN"]; got != fmt.Sprintf("0.0.0.0:%d", cluster.MetricsPort) {
			errorf(svc.Name, "DEMARCHE_METRICS_LISTEN %q, want 0.0.0.0:%d", got, cluster.MetricsPort)
		}
		if !slices.Contains(s.Healthcheck.Test, fmt.Sprintf("http://127.0.0.1:%d/readyz", cluster.HealthPort)) {
			errorf(svc.Name, "healthcheck %q does not ask /readyz", s.Healthcheck.Test)
		}
		if !strings.Contains(fmt.Sprint(s.DependsOn), "provision") {
			errorf(svc.Name, "does not wait for provision (depends_on %v)", s.DependsOn)
		}
	}
	slices.Sort(serving)
	slices.Sort(want)
	if !slices.Equal(serving, want) {
		t.Errorf("compose.yaml serves %v, the topology %v", serving, want)
	}

	// Provisioning: streams and buckets with the cluster's replicas.
	prov := cf.Services["provision"]
	if !slices.Equal(prov.Command, []string{"admin", "provision", "--replicas", fmt.Sprint(cluster.Replicas)}) {
		errorf("provision", "command %q, want admin provision --replicas %d", prov.Command, cluster.Replicas)
	}
	checkCreds("provision", prov, natsauth.Provisioner)
	checkTemporal("provision", prov, temporalx.IdentityAdmin)

	// NATS: three nodes of the generated configurations, the users of
	// deploy/nats/authorization.conf, the servers' password hashes.
	for _, n := range cluster.NATSNodes {
		s, ok := cf.Services[n]
		if !ok {
			t.Errorf("compose.yaml has no NATS node %s", n)
			continue
		}
		if !slices.Equal(s.Command, []string{"-c", "/etc/demarche/nats/" + n + ".conf"}) || !slices.Equal(s.Entrypoint, []string{"/usr/local/bin/nats-server"}) {
			errorf(n, "runs %q %q, want nats-server -c /etc/demarche/nats/%s.conf", s.Entrypoint, s.Command, n)
		}
		for _, v := range []string{"./nats/" + n + ".conf:/etc/demarche/nats/" + n + ".conf:ro", "../nats/authorization.conf:/etc/demarche/nats/authorization.conf:ro",
			"./secrets/" + natsauth.PasswordsFile + ":/etc/demarche/nats/" + natsauth.PasswordsFile + ":ro", n + ":/data"} {
			if !slices.Contains(s.Volumes, v) {
				errorf(n, "volumes %v lack %s", s.Volumes, v)
			}
		}
		if len(s.EnvFile) != 0 {
			errorf(n, "env_file %v: the password hashes come from the included %s (a reload re-reads it, an environment is read once)", s.EnvFile, natsauth.PasswordsFile)
		}
		if len(natsSecrets(s)) != 0 {
			errorf(n, "a NATS server mounts client credentials %v", natsSecrets(s))
		}
		// TLS (nats-N.conf): the servers' certificate and the CA of every client's.
		for source, target := range map[string]string{"nats-tls-ca": composeNATSTLS.CAFile, "nats-tls-server": composeNATSTLS.CertFile, "nats-tls-server-key": composeNATSTLS.KeyFile} {
			if got := secretTarget(s, source); got != target {
				errorf(n, "secret %s mounted at %q, want %q (nats-%s.conf reads it)", source, got, target, n)
			}
		}
	}

	// Temporal on PostgreSQL, and its UI.
	tmp := cf.Services["temporal"]
	flags := map[string]string{}
	for i := 1; i+1 < len(tmp.Command); i += 2 {
		flags[tmp.Command[i]] = tmp.Command[i+1]
	}
	if len(tmp.Command) == 0 || tmp.Command[0] != "temporal-server" {
		errorf("temporal", "command %q, want demarche temporal-server", tmp.Command)
	}
	for flag, want := range map[string]string{
		"--port": fmt.Sprint(cluster.TemporalPort), "--http-port": fmt.Sprint(cluster.TemporalHTTPPort),
		"--postgres-host": "postgres", "--postgres-port": fmt.Sprint(cluster.PostgresPort), "--postgres-user": cluster.PostgresUser,
		"--postgres-password-file": cluster.PostgresPasswordFile, "--database": cluster.TemporalDatabase, "--visibility-database": cluster.VisibilityDatabase,
	} {
		if flags[flag] != want {
			errorf("temporal", "%s %q, want %q", flag, flags[flag], want)
		}
	}
	for flag, source := range map[string]string{"--tls-cert": "temporal-tls-server", "--tls-key": "temporal-tls-server-key", "--tls-ca": "temporal-tls-ca"} {
		if !strings.HasPrefix(flags[flag], "/run/secrets/temporal-tls/") || secretTarget(tmp, source) != flags[flag] {
			errorf("temporal", "%s %q: a frontend beyond loopback takes mTLS clients only (the secret %s there)", flag, flags[flag], source)
		}
	}
	for _, sec := range tmp.Secrets {
		if strings.HasPrefix(sec.Source, "temporal-tls-") && !slices.Contains([]string{"temporal-tls-ca", "temporal-tls-server", "temporal-tls-server-key"}, sec.Source) {
			errorf("temporal", "mounts %s: the server holds its own certificate and the CA, no client's", sec.Source)
		}
	}
	if flags["--key-hashes"] != cluster.TemporalKeyHashesFile || secretTarget(tmp, "temporal-key-hashes") != cluster.TemporalKeyHashesFile ||
		cf.Secrets["temporal-key-hashes"].File != "secrets/temporal-credentials/key-hashes" {
		errorf("temporal", "--key-hashes %q: want the temporal-key-hashes secret (secrets/temporal-credentials/key-hashes) at %s: the frontend authorizes every caller by its key",
			flags["--key-hashes"], cluster.TemporalKeyHashesFile)
	}
	if secretTarget(tmp, "temporal-postgres-password") != cluster.PostgresPasswordFile {
		errorf("temporal", "the PostgreSQL password is not mounted at %s", cluster.PostgresPasswordFile)
	}
	pg := cf.Services["postgres"]
	if pg.Environment["POSTGRES_USER"] != cluster.PostgresUser || pg.Environment["POSTGRES_PASSWORD_FILE"] != cluster.PostgresPasswordFile {
		errorf("postgres", "environment %v: want POSTGRES_USER %s and POSTGRES_PASSWORD_FILE %s", pg.Environment, cluster.PostgresUser, cluster.PostgresPasswordFile)
	}
	// The UI reads as the observer (its key, and nothing else's).
	ui := cf.Services["temporal-ui"]
	if !slices.Equal(ui.Command, []string{"temporal-ui", "--host", "0.0.0.0", "--port", "8080"}) {
		errorf("temporal-ui", "command %q, want demarche temporal-ui --host 0.0.0.0 --port 8080", ui.Command)
	}
	checkTemporal("temporal-ui", ui, temporalx.IdentityObserver)
	if !slices.Contains(ui.Ports, fmt.Sprintf("%d:8080", cluster.TemporalUIPort)) {
		errorf("temporal-ui", "ports %v do not publish %d", ui.Ports, cluster.TemporalUIPort)
	}
}
