// Package cluster is the one description of Démarche's production topology
// beyond one machine: three clustered NATS servers (streams and buckets with
// three replicas), PostgreSQL, a Temporal server on it, the Temporal UI, a
// provisioning step, and every Démarche service as its own process with its
// own NATS credentials.
//
// Two things are derived from it and kept equal to it by tests: the
// multi-process cluster test (devstack/chaos TestCluster, `make
// cluster-test`), which runs the topology on loopback with random ports, and
// deploy/compose/compose.yaml (TestComposeMatchesTopology, run by make test
// and make lint), which describes it for one host with fixed ports, and
// deploy/k8s (TestDeployK8sMatchesTopology, TestDeployK8sHelmValues,
// TestDeployK8sTemporalServer, TestDeployK8sTemporalKeys, run by
// make lint), which describes it for Kubernetes.
package cluster

import (
	"fmt"
	"strings"

	"github.com/demarche/demarche/pkg/natsauth"
)

// Replicas is the copies of every stream and bucket on the cluster.
const Replicas = 3

// NATSNodes are the names of the NATS servers (cluster "demarche").
var NATSNodes = []string{"nats-1", "nats-2", "nats-3"}

// NATSClusterName names the NATS cluster.
const NATSClusterName = "demarche"

// Ports of the deployment (compose; the test picks free ones on loopback).
const (
	NATSClientPort   = 4222
	NATSClusterPort  = 6222
	NATSMonitorPort  = 8222
	PostgresPort     = 5432
	TemporalPort     = 7233
	TemporalHTTPPort = 7243
	TemporalUIPort   = 8233
	GatewayPort      = 8080
	HealthPort       = 9090 // every service's /healthz and /readyz
	MetricsPort      = 9464 // every service's /metrics
)

// Where credentials are mounted in the deployment: one file per NATS
// identity (<identity>.creds, "demarche-<identity>:<password>"), and the
// PostgreSQL password of the Temporal server.
const (
	CredentialsDir       = "/run/secrets/demarche"
	PostgresPasswordFile = "/run/secrets/temporal-postgres-password"
)

// Where a Temporal client's API key is mounted (its own identity's alone:
// the service's name, the admin's for provisioning), and the Temporal
// server's file of the keys' hashes (demarche admin credentials writes both).
const (
	TemporalKeyFile       = "/run/secrets/temporal-key"
	TemporalKeyHashesFile = "/run/secrets/temporal-key-hashes"
)

// PostgresUser and the databases of the Temporal server.
const (
	PostgresUser       = "temporal"
	TemporalDatabase   = "temporal"
	VisibilityDatabase = "temporal_visibility"
)

// Service is one Démarche service process.
type Service struct {
	// Name is the `demarche serve NAME` subcommand and the compose service.
	Name string
	// Identity is its NATS user: each service connects with its own.
	Identity natsauth.Identity
	// Args follow `demarche serve NAME` in every deployment.
	Args []string
	// Temporal: the service dials Temporal (its readiness needs it).
	Temporal bool
}

// FundsFile and RosterFile are where deployments mount the funds and the
// roster (compose: a bind of the operator's file; k8s: the ConfigMaps
// demarche-funds and demarche-roster); the cluster test writes its own there.
const (
	FundsFile  = "/etc/demarche/funds.yaml"
	RosterFile = "/etc/demarche/roster.yaml"
)

// Services are the Démarche processes, in start order (those that answer
// requests before those that make them; audit before funding, which needs its
// funds opened, an act audit records, before it starts).
var Services = []Service{
	{Name: "audit", Identity: natsauth.Audit},
	// roster and funding read the crises' workflows (describe, query) to
	// check that each request carries out a decision.
	{Name: "roster", Identity: natsauth.Roster, Args: []string{"--roster", RosterFile}, Temporal: true},
	{Name: "funding", Identity: natsauth.Funding, Args: []string{"--funds", FundsFile}, Temporal: true},
	{Name: "schema", Identity: natsauth.Schema},
	{Name: "eventlog", Identity: natsauth.EventLog},
	{Name: "partners", Identity: natsauth.Partners, Temporal: true},
	{Name: "earlywarning", Identity: natsauth.EarlyWarning, Temporal: true},
	{Name: "worker", Identity: natsauth.Worker, Temporal: true},
	{Name: "gateway", Identity: natsauth.Gateway, Temporal: true},
}

// ServiceNamed returns the service of a name.
func ServiceNamed(name string) (Service, bool) {
	for _, s := range Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// CredentialsFile is where an identity's NATS credentials are mounted.
func CredentialsFile(id natsauth.Identity) string {
	return CredentialsDir + "/" + string(id) + ".creds"
}

// Endpoint is a NATS node: Host is how the others reach it, Bind the
// address it listens on (0.0.0.0 in a container, 127.0.0.1 in the test).
type Endpoint struct {
	Host, Bind                       string
	ClientPort, ClusterPort, Monitor int
}

// SeedList is the clients' comma-separated URL list of the nodes.
func SeedList(all []Endpoint) string {
	var urls []string
	for _, e := range all {
		urls = append(urls, fmt.Sprintf("nats://%s:%d", e.Host, e.ClientPort))
	}
	return strings.Join(urls, ",")
}

// NATSServerConfig is one node's nats-server configuration: JetStream with
// sync_interval always (acknowledged = on a quorum of disks, see
// services/platform), the cluster's routes to every node, and the users of
// deploy/nats/authorization.conf (its password hashes from the
// nats-passwords.conf it includes, beside it: a reload re-reads them).
// storeDir is the node's JetStream folder.
func NATSServerConfig(node string, self Endpoint, all []Endpoint, storeDir, authorizationFile string) string {
	var routes []string
	for _, e := range all {
		routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://%s:%d", e.Host, e.ClusterPort)))
	}
	return fmt.Sprintf(`# Démarche NATS node %[1]s (generated by devstack/cluster.NATSServerConfig).
server_name: %[1]s
listen: "%[2]s:%[3]d"
http: "%[2]s:%[4]d"

jetstream {
  store_dir: %[5]q
  # Acknowledged = on disk on a quorum of nodes (services/platform explains).
  sync_interval: always
}

cluster {
  name: %[6]s
  listen: "%[2]s:%[7]d"
  routes: [ %[8]s ]
}

include %[9]q
`, node, self.Bind, self.ClientPort, self.Monitor, storeDir, NATSClusterName, self.ClusterPort, strings.Join(routes, ", "), authorizationFile)
}

// NATSTLS are the files of a NATS node's TLS: its certificate and key (the
// same certificate serves clients and routes, so it names every node and
// allows both server and client authentication) and the CA that signed the
// servers' and every client's certificate.
type NATSTLS struct {
	CertFile, KeyFile, CAFile string
}

// NATSServerConfigTLS is NATSServerConfig with TLS required on every
// client connection and every route: clients and the other nodes present a
// certificate of the CA (verify), then a client its password as before. The
// cluster test runs NATSServerConfig on loopback; compose runs this one.
func NATSServerConfigTLS(node string, self Endpoint, all []Endpoint, storeDir, authorizationFile string, tls NATSTLS) string {
	conf := NATSServerConfig(node, self, all, storeDir, authorizationFile)
	block := func(indent string) string {
		return fmt.Sprintf("%[1]stls {\n%[1]s  cert_file: %[2]q\n%[1]s  key_file: %[3]q\n%[1]s  ca_file: %[4]q\n%[1]s  verify: true\n%[1]s  timeout: 5\n%[1]s}\n",
			indent, tls.CertFile, tls.KeyFile, tls.CAFile)
	}
	clientTLS := "# Clients connect over TLS only and present a certificate of the CA (mutual TLS),\n# then their password (authorization.conf): a stolen password alone does not connect.\n" + block("")
	routeTLS := "  # Routes between the nodes: TLS both ways, each node's certificate checked.\n" + block("  ")
	return strings.Replace(conf, "\ncluster {\n", "\n"+clientTLS+"\ncluster {\n"+routeTLS, 1)
}
