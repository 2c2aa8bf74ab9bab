package cluster_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
)

const k8sDir = "../../deploy/k8s"

// What deploy/k8s names besides the topology: the nats chart's release name
// and the Temporal server's Service make the hosts the services dial.
const (
	// k8sNATSRelease is the nats chart's release: servers <release>-N, reached
	// through the headless service <release>-headless.
	k8sNATSRelease = "nats"
	// k8sTemporalFrontend is the Service of the Temporal server (temporal.yaml)
	// and the name on its certificate.
	k8sTemporalFrontend = "temporal-frontend"
	// k8sTemporalServer is the Deployment of demarche temporal-server.
	k8sTemporalServer = "temporal"
	// k8sHistoryShards is the Temporal database's shard count: fixed for the
	// database's life (the value the Helm chart's deployment was set up with).
	k8sHistoryShards = 512
	// k8sTemporalKeyPrefix names each Temporal identity's API key secret
	// (demarche-temporal-key-<identity>).
	k8sTemporalKeyPrefix = "demarche-temporal-key-"
	// k8sTemporalTLSPrefix names each Temporal identity's client certificate
	// secret (demarche-temporal-tls-<identity>: ca.pem, client.pem, client-key.pem).
	k8sTemporalTLSPrefix = "demarche-temporal-tls-"
	// k8sNATSTLSPrefix names each NATS identity's client certificate secret
	// (demarche-nats-tls-<identity>: ca.crt, tls.crt, tls.key).
	k8sNATSTLSPrefix = "demarche-nats-tls-"
	// k8sCodecKeyFile is where the payload codec key is mounted.
	k8sCodecKeyFile = "/run/secrets/demarche-codec/codec-key.json"
)

// k8sNodes are the NATS servers as the nats chart's StatefulSet names them:
// as many as the topology has nodes.
func k8sNodes() []cluster.Endpoint {
	var out []cluster.Endpoint
	for i := range cluster.NATSNodes {
		out = append(out, cluster.Endpoint{Host: fmt.Sprintf("%s-%d.%s-headless", k8sNATSRelease, i, k8sNATSRelease), ClientPort: cluster.NATSClientPort})
	}
	return out
}

// k8sObject is the part of a Kubernetes object checked here (Deployment,
// Job, Service, PodDisruptionBudget).
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector yaml.Node      `yaml:"selector"` // Deployment/PDB: {matchLabels}; Service: labels
		Template k8sPodTemplate `yaml:"template"`
		// Service
		Ports []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		// PodDisruptionBudget
		MinAvailable *int `yaml:"minAvailable"`
	} `yaml:"spec"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		SecurityContext struct {
			FSGroup *int `yaml:"fsGroup"`
		} `yaml:"securityContext"`
		Containers []k8sContainer `yaml:"containers"`
		Volumes    []struct {
			Name   string `yaml:"name"`
			Secret *struct {
				SecretName string `yaml:"secretName"`
			} `yaml:"secret"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	SecurityContext struct {
		RunAsUser *int `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

func (c k8sContainer) env() map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

// port resolves a probe's or service's port (a number or a port's name) to
// the container port.
func (c k8sContainer) port(p string) int {
	if n, err := strconv.Atoi(p); err == nil {
		return n
	}
	for _, cp := range c.Ports {
		if cp.Name == p {
			return cp.ContainerPort
		}
	}
	return 0
}

// secretMounts maps each mounted secret to where it is mounted.
func (t k8sPodTemplate) secretMounts(c k8sContainer) map[string]string {
	out := map[string]string{}
	for s, m := range t.secretFileMounts(c) {
		out[s] = m[0]
	}
	return out
}

// secretFileMounts maps each mounted secret to where it is mounted and the
// file of it mounted there ("" for the whole secret as a folder).
func (t k8sPodTemplate) secretFileMounts(c k8sContainer) map[string][2]string {
	out := map[string][2]string{}
	for _, v := range t.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				out[v.Secret.SecretName] = [2]string{m.MountPath, m.SubPath}
			}
		}
	}
	return out
}

// k8sPods are the pod templates of deploy/k8s's Deployments and Jobs, by
// "Kind name".
func k8sPods(objects map[string]map[string]k8sObject) map[string]k8sPodTemplate {
	out := map[string]k8sPodTemplate{}
	for _, kind := range []string{"Deployment", "Job"} {
		for name, o := range objects[kind] {
			out[kind+" "+name] = o.Spec.Template
		}
	}
	return out
}

// k8sTemporalIdentities are the Temporal identities of deploy/k8s's pods
// that dial Temporal, by "Kind name": each topology service that is a
// Temporal client as itself, provisioning as the admin, the UI as the
// observer (compose.yaml mounts the same keys).
func k8sTemporalIdentities() map[string]string {
	out := map[string]string{
		"Job provision":          temporalx.IdentityAdmin,
		"Deployment temporal-ui": temporalx.IdentityObserver,
	}
	for _, svc := range cluster.Services {
		if svc.Temporal {
			out["Deployment "+svc.Name] = svc.Name
		}
	}
	return out
}

type k8sKustomization struct {
	Resources       []string `yaml:"resources"`
	SecretGenerator []struct {
		Name  string   `yaml:"name"`
		Files []string `yaml:"files"`
		Envs  []string `yaml:"envs"`
	} `yaml:"secretGenerator"`
}

// readK8s parses deploy/k8s: its kustomization and every object of its
// resources, by kind and name.
func readK8s(t *testing.T) (k8sKustomization, map[string]map[string]k8sObject) {
	t.Helper()
	var kz k8sKustomization
	b, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kz); err != nil {
		t.Fatalf("kustomization.yaml does not parse: %v", err)
	}
	// Every manifest of the folder is a resource (a forgotten one is never applied).
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var manifests []string
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !strings.HasSuffix(base, "-values.yaml") {
			manifests = append(manifests, base)
		}
	}
	if got := slices.Sorted(slices.Values(kz.Resources)); !slices.Equal(got, manifests) {
		t.Errorf("kustomization.yaml resources %v, the folder's manifests %v", got, manifests)
	}
	objects := map[string]map[string]k8sObject{}
	for _, r := range kz.Resources {
		b, err := os.ReadFile(filepath.Join(k8sDir, r))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s does not parse: %v", r, err)
			}
			if o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: an object without kind or name", r)
				continue
			}
			if objects[o.Kind] == nil {
				objects[o.Kind] = map[string]k8sObject{}
			}
			if _, dup := objects[o.Kind][o.Metadata.Name]; dup {
				t.Errorf("%s: a second %s %s", r, o.Kind, o.Metadata.Name)
			}
			objects[o.Kind][o.Metadata.Name] = o
		}
	}
	return kz, objects
}

// matchLabels reads a selector: {matchLabels: …} or a Service's labels.
func matchLabels(t *testing.T, n yaml.Node) map[string]string {
	t.Helper()
	var sel struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if err := n.Decode(&sel); err == nil && sel.MatchLabels != nil {
		return sel.MatchLabels
	}
	var labels map[string]string
	if err := n.Decode(&labels); err != nil {
		t.Errorf("selector does not parse: %v", err)
	}
	return labels
}

// selects: every label of the selector is on the pods (and there is one).
func selects(sel, pod map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if pod[k] != v {
			return false
		}
	}
	return true
}

// deploy/k8s describes the topology the multi-process cluster test runs:
// the same services with the same commands, each with its own NATS
// credentials and nothing else's, probes on the health port, the cluster's
// seed list, provisioning with 3 replicas, the gateway's Service, and
// disruption budgets that keep a worker and a gateway through a drain.
func TestDeployK8sMatchesTopology(t *testing.T) {
	kz, objects := readK8s(t)
	seed := cluster.SeedList(k8sNodes())
	generated := map[string][]string{}
	for _, g := range kz.SecretGenerator {
		generated[g.Name] = append(slices.Clone(g.Files), g.Envs...)
	}
	errorf := func(what, format string, args ...any) {
		t.Helper()
		t.Errorf("deploy/k8s %s: %s", what, fmt.Sprintf(format, args...))
	}
	// one returns a pod template's single container.
	one := func(what string, tpl k8sPodTemplate) (k8sContainer, bool) {
		if len(tpl.Spec.Containers) != 1 {
			errorf(what, "%d containers, want 1", len(tpl.Spec.Containers))
			return k8sContainer{}, false
		}
		c := tpl.Spec.Containers[0]
		if c.Image != "demarche" || len(c.Command) != 0 {
			errorf(what, "image %q command %q: want the demarche image and its entrypoint", c.Image, c.Command)
		}
		return c, true
	}
	checkCreds := func(what string, tpl k8sPodTemplate, c k8sContainer, id natsauth.Identity) {
		env := c.env()
		if got := env["DEMARCHE_NATS_CREDS"]; got != cluster.CredentialsFile(id) {
			errorf(what, "DEMARCHE_NATS_CREDS %q, want %q (its own identity's)", got, cluster.CredentialsFile(id))
		}
		if got := env["DEMARCHE_NATS_URL"]; got != seed {
			errorf(what, "DEMARCHE_NATS_URL %q, want the seed list of the %d servers %q", got, len(cluster.NATSNodes), seed)
		}
		secret := "demarche-nats-" + string(id)
		var nats []string
		for s := range tpl.secretMounts(c) {
			if strings.HasPrefix(s, "demarche-nats-") && !strings.HasPrefix(s, k8sNATSTLSPrefix) {
				nats = append(nats, s)
			}
		}
		if !slices.Equal(nats, []string{secret}) {
			errorf(what, "NATS credentials mounted %v: a service gets its own identity's alone (%s)", nats, secret)
		}
		if got := tpl.secretMounts(c)[secret]; got != cluster.CredentialsDir {
			errorf(what, "secret %s mounted at %q, want %q", secret, got, cluster.CredentialsDir)
		}
		// The secret holds the one file <identity>.creds (its key is the file's name).
		if got := generated[secret]; !slices.Equal(got, []string{"secrets/" + string(id) + ".creds"}) {
			errorf(what, "secret %s is generated from %v, want [secrets/%s.creds] (demarche admin credentials writes it)", secret, got, id)
		}
		// NATS over mutual TLS: the CA and its own identity's client certificate alone.
		tlsSecret := k8sNATSTLSPrefix + string(id)
		for v, f := range map[string]string{natsx.EnvCA: "ca.crt", natsx.EnvCert: "tls.crt", natsx.EnvKey: "tls.key"} {
			if got := env[v]; got != "/run/secrets/nats-tls/"+f {
				errorf(what, "%s %q, want /run/secrets/nats-tls/%s (NATS over mutual TLS)", v, got, f)
			}
		}
		var natsTLS []string
		for s := range tpl.secretMounts(c) {
			if strings.HasPrefix(s, k8sNATSTLSPrefix) {
				natsTLS = append(natsTLS, s)
			}
		}
		if !slices.Equal(natsTLS, []string{tlsSecret}) || tpl.secretMounts(c)[tlsSecret] != "/run/secrets/nats-tls" {
			errorf(what, "NATS client certificates mounted %v: want its own identity's alone (%s) at /run/secrets/nats-tls", natsTLS, tlsSecret)
		}
		if got, want := generated[tlsSecret], []string{"ca.crt=secrets/nats-tls/ca.pem", "tls.crt=secrets/nats-tls/" + string(id) + ".pem", "tls.key=secrets/nats-tls/" + string(id) + "-key.pem"}; !slices.Equal(got, want) {
			errorf(what, "secret %s is generated from %v, want %v", tlsSecret, got, want)
		}
	}
	checkTemporal := func(what string, tpl k8sPodTemplate, c k8sContainer, needs bool) {
		env := c.env()
		mounts := tpl.secretMounts(c)
		if !needs {
			keys := false
			for s := range mounts {
				keys = keys || strings.HasPrefix(s, k8sTemporalKeyPrefix) || strings.HasPrefix(s, k8sTemporalTLSPrefix)
			}
			if _, ok := env["DEMARCHE_TEMPORAL_ADDRESS"]; ok || mounts["demarche-codec-key"] != "" || keys || env[temporalx.EnvKeyFile] != "" {
				errorf(what, "reaches Temporal or holds the codec key or a Temporal key, which it does not need")
			}
			return
		}
		if got, want := env["DEMARCHE_TEMPORAL_ADDRESS"], fmt.Sprintf("%s:%d", k8sTemporalFrontend, cluster.TemporalPort); got != want {
			errorf(what, "DEMARCHE_TEMPORAL_ADDRESS %q, want %q (the Temporal server's Service)", got, want)
		}
		for _, v := range []string{"DEMARCHE_TEMPORAL_TLS_CERT", "DEMARCHE_TEMPORAL_TLS_KEY", "DEMARCHE_TEMPORAL_TLS_CA"} {
			if !strings.HasPrefix(env[v], "/run/secrets/temporal-tls/") {
				errorf(what, "%s %q: the Temporal frontend takes mTLS clients only", v, env[v])
			}
		}
		if env["DEMARCHE_TEMPORAL_TLS_SERVER_NAME"] != k8sTemporalFrontend {
			errorf(what, "DEMARCHE_TEMPORAL_TLS_SERVER_NAME %q, want %s (the name on the Temporal server's certificate)", env["DEMARCHE_TEMPORAL_TLS_SERVER_NAME"], k8sTemporalFrontend)
		}
		// Its own identity's client certificate (k8sTemporalIdentities), no other's.
		id := k8sTemporalIdentities()[what]
		secret := k8sTemporalTLSPrefix + id
		if mounts[secret] != "/run/secrets/temporal-tls" {
			errorf(what, "its own Temporal client certificate %s is not mounted at /run/secrets/temporal-tls (mounts %v)", secret, mounts)
		}
		for s := range mounts {
			if strings.HasPrefix(s, k8sTemporalTLSPrefix) && s != secret {
				errorf(what, "mounts %s: a Temporal client gets its own identity's certificate alone (%s)", s, secret)
			}
		}
		if got, want := generated[secret], []string{"ca.pem=secrets/temporal-tls/ca.pem", "client.pem=secrets/temporal-tls/" + id + ".pem", "client-key.pem=secrets/temporal-tls/" + id + "-key.pem"}; !slices.Equal(got, want) {
			errorf(what, "secret %s is generated from %v, want %v", secret, got, want)
		}
		// Its own Temporal identity's API key is checked for every pod below
		// (TestDeployK8sTemporalKeys).
	}

	// Every Démarche service, as the topology (and the cluster test) runs it.
	var serving []string
	for name, d := range objects["Deployment"] {
		if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 && len(cs[0].Args) > 0 && cs[0].Args[0] == "serve" {
			serving = append(serving, name)
		}
	}
	var want []string
	for _, svc := range cluster.Services {
		want = append(want, svc.Name)
		what := "Deployment " + svc.Name
		d, ok := objects["Deployment"][svc.Name]
		if !ok {
			t.Errorf("deploy/k8s has no Deployment %s (devstack/cluster.Services runs it)", svc.Name)
			continue
		}
		tpl := d.Spec.Template
		if !selects(matchLabels(t, d.Spec.Selector), tpl.Metadata.Labels) {
			errorf(what, "selector does not select its pods (labels %v)", tpl.Metadata.Labels)
		}
		c, ok := one(what, tpl)
		if !ok {
			continue
		}
		// serve NAME and the topology's arguments, then only the flags a
		// cluster adds: the codec key (Temporal clients), the gateway's listener
		// and the Temporal UI's origin for the codec endpoint.
		base := append([]string{"serve", svc.Name}, svc.Args...)
		if len(c.Args) < len(base) || !slices.Equal(c.Args[:len(base)], base) || (len(c.Args)-len(base))%2 != 0 {
			errorf(what, "args %q, want %q then flag pairs", c.Args, base)
			continue
		}
		flags := map[string]string{}
		for i := len(base); i+1 < len(c.Args); i += 2 {
			flags[c.Args[i]] = c.Args[i+1]
		}
		wantFlags := map[string]string{}
		if svc.Temporal {
			wantFlags["--codec-key"] = k8sCodecKeyFile
		}
		if svc.Name == "gateway" {
			wantFlags["--host"] = "0.0.0.0"
			wantFlags["--port"] = fmt.Sprint(cluster.GatewayPort)
			if o := flags["--codec-origin"]; strings.HasPrefix(o, "https://") {
				wantFlags["--codec-origin"] = o
			} else {
				errorf(what, "--codec-origin %q, want the Temporal UI's https origin", o)
			}
			if c.env()["DEMARCHE_OIDC_ISSUER"] == "" {
				errorf(what, "no DEMARCHE_OIDC_ISSUER: the gateway needs the organisation's token issuer")
			}
			// The address people use: the gateway answers to no other host (DNS rebinding).
			if u := flags["--public-url"]; strings.HasPrefix(u, "https://") {
				wantFlags["--public-url"] = u
			} else {
				errorf(what, "--public-url %q, want the gateway's https address", u)
			}
		}
		if !maps.Equal(flags, wantFlags) {
			errorf(what, "flags after %q are %v, want %v", base, flags, wantFlags)
		}
		// No service loads demo data or opens funds (docs/operations.md "Funds and roster").
		if slices.Contains(c.Args, "--open-funds") || slices.Contains(c.Args, "--seed") {
			errorf(what, "args %q load demo data or open funds: give --funds/--roster files and open funds with admin open-fund", c.Args)
		}
		checkCreds(what, tpl, c, svc.Identity)
		checkTemporal(what, tpl, c, svc.Temporal)
		if svc.Temporal {
			if got := tpl.secretMounts(c)["demarche-codec-key"]; got != filepath.Dir(k8sCodecKeyFile) {
				errorf(what, "the codec key secret is mounted at %q, want %s", got, filepath.Dir(k8sCodecKeyFile))
			}
			if got := generated["demarche-codec-key"]; !slices.Equal(got, []string{"secrets/" + filepath.Base(k8sCodecKeyFile)}) {
				errorf(what, "demarche-codec-key is generated from %v, want [secrets/%s]", got, filepath.Base(k8sCodecKeyFile))
			}
		}
		env := c.env()
		if got := env["DEMARCHE_HEALTH_LISTEN"]; got != fmt.Sprintf("0.0.0.0:%d", cluster.HealthPort) {
			errorf(what, "DEMARCHE_HEALTH_LISTEN %q, want 0.0.0.0:%d", got, cluster.HealthPort)
		}
		if got := env["DEMARCHE_METRICS_LISTEN"]; got != fmt.Sprintf("0.0.0.0:%d", cluster.MetricsPort) {
			errorf(what, "DEMARCHE_METRICS_LISTEN %q, want 0.0.0.0:%d", got, cluster.MetricsPort)
		}
		if c.port("metrics") != cluster.MetricsPort {
			errorf(what, "no container port metrics %d", cluster.MetricsPort)
		}
		for _, p := range []struct {
			kind  string
			probe *k8sProbe
			path  string
		}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
			if p.probe == nil {
				errorf(what, "no %s probe", p.kind)
				continue
			}
			if p.probe.HTTPGet.Path != p.path || c.port(p.probe.HTTPGet.Port) != cluster.HealthPort {
				errorf(what, "%s probe asks %s on port %q (%d), want %s on the health port %d", p.kind, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, c.port(p.probe.HTTPGet.Port), p.path, cluster.HealthPort)
			}
		}
	}
	slices.Sort(serving)
	slices.Sort(want)
	if !slices.Equal(serving, want) {
		t.Errorf("deploy/k8s serves %v, the topology %v", serving, want)
	}

	// Provisioning: streams and buckets with the cluster's replicas.
	if job, ok := objects["Job"]["provision"]; !ok {
		t.Errorf("deploy/k8s has no Job provision")
	} else if c, ok := one("Job provision", job.Spec.Template); ok {
		if !slices.Equal(c.Args, []string{"admin", "provision", "--replicas", fmt.Sprint(cluster.Replicas)}) {
			errorf("Job provision", "args %q, want admin provision --replicas %d", c.Args, cluster.Replicas)
		}
		checkCreds("Job provision", job.Spec.Template, c, natsauth.Provisioner)
		checkTemporal("Job provision", job.Spec.Template, c, true)
	}

	// The gateway's Service reaches its pods on the gateway port.
	gw := objects["Deployment"]["gateway"]
	if svc, ok := objects["Service"]["gateway"]; !ok {
		t.Errorf("deploy/k8s has no Service gateway")
	} else {
		if !selects(matchLabels(t, svc.Spec.Selector), gw.Spec.Template.Metadata.Labels) {
			errorf("Service gateway", "does not select the gateway's pods")
		}
		found := false
		for _, p := range svc.Spec.Ports {
			if len(gw.Spec.Template.Spec.Containers) == 1 && gw.Spec.Template.Spec.Containers[0].port(p.TargetPort) == cluster.GatewayPort {
				found = true
			}
		}
		if !found {
			errorf("Service gateway", "no port targets the gateway's %d", cluster.GatewayPort)
		}
	}

	// Disruption budgets: a drain keeps a worker polling and a gateway
	// answering; a budget never blocks a drain (replicas above minAvailable).
	for _, name := range []string{"worker", "gateway"} {
		if _, ok := objects["PodDisruptionBudget"][name]; !ok {
			t.Errorf("deploy/k8s has no PodDisruptionBudget %s", name)
		}
	}
	for name, pdb := range objects["PodDisruptionBudget"] {
		sel := matchLabels(t, pdb.Spec.Selector)
		var covered []string
		for dn, d := range objects["Deployment"] {
			if selects(sel, d.Spec.Template.Metadata.Labels) {
				covered = append(covered, dn)
				if pdb.Spec.MinAvailable == nil || d.Spec.Replicas == nil || *d.Spec.Replicas <= *pdb.Spec.MinAvailable {
					errorf("PodDisruptionBudget "+name, "Deployment %s: replicas must exceed minAvailable, or no node ever drains", dn)
				}
			}
		}
		if len(covered) != 1 {
			errorf("PodDisruptionBudget "+name, "selects Deployments %v, want one", covered)
		}
	}
}

// at walks a parsed YAML document by keys.
func at(doc any, keys ...string) any {
	for _, k := range keys {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[k]
	}
	return doc
}

func readValues(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(k8sDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s does not parse: %v", name, err)
	}
	return doc
}

// The values for the upstream nats chart give the engine of the topology: a
// NATS cluster of 3 with JetStream on file storage, sync_interval always and
// Démarche's users. Temporal has no chart values (TestDeployK8sTemporalServer).
func TestDeployK8sHelmValues(t *testing.T) {
	kz, _ := readK8s(t)
	nats := readValues(t, "nats-values.yaml")
	check := func(file string, doc any, want any, keys ...string) {
		t.Helper()
		if got := at(doc, keys...); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("deploy/k8s/%s %s: %v, want %v", file, strings.Join(keys, "."), got, want)
		}
	}
	const nv = "nats-values.yaml"
	check(nv, nats, true, "config", "cluster", "enabled")
	check(nv, nats, len(cluster.NATSNodes), "config", "cluster", "replicas")
	check(nv, nats, len(k8sNodes()), "config", "cluster", "replicas")
	check(nv, nats, cluster.NATSClusterName, "config", "cluster", "merge", "name")
	check(nv, nats, true, "config", "jetstream", "enabled")
	check(nv, nats, true, "config", "jetstream", "fileStore", "enabled")
	check(nv, nats, true, "config", "jetstream", "fileStore", "pvc", "enabled")
	check(nv, nats, "always", "config", "jetstream", "merge", "sync_interval")
	// include <mount>/authorization.conf, from the configmap of deploy/nats/authorization.conf.
	var include string
	if m, ok := at(nats, "config", "merge").(map[string]any); ok {
		for k, v := range m {
			if strings.HasSuffix(k, "$include") {
				include = fmt.Sprint(v)
			}
		}
	}
	if include != "auth/authorization.conf" {
		t.Errorf("deploy/k8s/%s does not include auth/authorization.conf (config.merge …$include: %q)", nv, include)
	}
	patches := fmt.Sprint(at(nats, "container", "patch"), at(nats, "podTemplate", "patch"))
	for _, s := range []string{"mountPath:/etc/nats-config/auth", "name:demarche-nats-authorization"} {
		if !strings.Contains(patches, s) {
			t.Errorf("deploy/k8s/%s: the authorization configmap is not mounted (%s missing from the patches)", nv, s)
		}
	}
	// The hashes: the secret projected beside authorization.conf (the file it
	// includes), never from the environment (a reload does not re-read it).
	for _, s := range []string{"projected:", "name:demarche-nats-passwords"} {
		if !strings.Contains(patches, s) {
			t.Errorf("deploy/k8s/%s: the password hashes are not projected beside authorization.conf (%s missing from the patches)", nv, s)
		}
	}
	if at(nats, "container", "merge", "envFrom") != nil {
		t.Errorf("deploy/k8s/%s: the servers take an environment from a secret; the hashes come from the included %s", nv, natsauth.PasswordsFile)
	}
	passwords := false
	for _, g := range kz.SecretGenerator {
		passwords = passwords || (g.Name == "demarche-nats-passwords" && slices.Equal(g.Files, []string{"secrets/" + natsauth.PasswordsFile}))
	}
	if !passwords {
		t.Errorf("deploy/k8s/kustomization.yaml does not generate demarche-nats-passwords from secrets/%s", natsauth.PasswordsFile)
	}

	// Mutual TLS on clients and routes, from the secret the kustomization makes.
	check(nv, nats, true, "config", "nats", "tls", "enabled")
	check(nv, nats, "demarche-nats-server-tls", "config", "nats", "tls", "secretName")
	check(nv, nats, true, "config", "nats", "tls", "merge", "verify")
	check(nv, nats, true, "config", "cluster", "tls", "enabled")
	check(nv, nats, "demarche-nats-server-tls", "config", "cluster", "tls", "secretName")
	check(nv, nats, true, "config", "cluster", "tls", "merge", "verify")
	check(nv, nats, "/etc/nats-certs/nats/ca.crt", "config", "nats", "tls", "merge", "ca_file")
	check(nv, nats, "/etc/nats-certs/cluster/ca.crt", "config", "cluster", "tls", "merge", "ca_file")
	serverTLS := false
	for _, g := range kz.SecretGenerator {
		serverTLS = serverTLS || (g.Name == "demarche-nats-server-tls" &&
			slices.Equal(g.Files, []string{"ca.crt=secrets/nats-tls/ca.pem", "tls.crt=secrets/nats-tls/server.pem", "tls.key=secrets/nats-tls/server-key.pem"}))
	}
	if !serverTLS {
		t.Errorf("deploy/k8s/kustomization.yaml does not generate demarche-nats-server-tls (ca.crt, tls.crt, tls.key) from secrets/nats-tls/")
	}
	// The chart's pods pass the namespace's restricted Pod Security: the
	// server and its reloader, sized, pinned by digest.
	for _, c := range []string{"container", "reloader"} {
		check(nv, nats, false, c, "merge", "securityContext", "allowPrivilegeEscalation")
		check(nv, nats, true, c, "merge", "securityContext", "readOnlyRootFilesystem")
		check(nv, nats, true, c, "merge", "securityContext", "runAsNonRoot")
		check(nv, nats, "[ALL]", c, "merge", "securityContext", "capabilities", "drop")
		for _, r := range []string{"requests", "limits"} {
			for _, k := range []string{"cpu", "memory"} {
				if at(nats, c, "merge", "resources", r, k) == nil {
					t.Errorf("deploy/k8s/%s %s: no resources.%s.%s", nv, c, r, k)
				}
			}
		}
		// The chart prints <repository>:<tag>: the digest rides on the tag.
		if d := fmt.Sprint(at(nats, c, "image", "tag")); !regexp.MustCompile(`^[A-Za-z0-9_.-]+@sha256:[0-9a-f]{64}$`).MatchString(d) {
			t.Errorf("deploy/k8s/%s %s.image.tag %q: want <tag>@sha256:<64 hex> (images by digest)", nv, c, d)
		}
	}
	check(nv, nats, true, "podTemplate", "merge", "spec", "securityContext", "runAsNonRoot")
	check(nv, nats, "RuntimeDefault", "podTemplate", "merge", "spec", "securityContext", "seccompProfile", "type")
	if at(nats, "podTemplate", "merge", "spec", "securityContext", "fsGroup") == nil {
		t.Errorf("deploy/k8s/%s: no fsGroup: the servers' user cannot write its JetStream volume", nv)
	}

	// Temporal is Démarche's own server (TestDeployK8sTemporalServer): the
	// upstream chart cannot load the authorizer, so no values for it.
	if _, err := os.Stat(filepath.Join(k8sDir, "temporal-values.yaml")); err == nil {
		t.Errorf("deploy/k8s/temporal-values.yaml exists: the temporalio/temporal chart runs a frontend that authorizes nobody (every client of the CA may do anything); deploy/k8s/temporal.yaml runs demarche temporal-server")
	}
}

// Every pod of deploy/k8s that dials Temporal presents its own identity's API
// key, as compose.yaml's services do: the key file at the same path
// (DEMARCHE_TEMPORAL_KEY_FILE), from a secret of that identity alone,
// generated from the file demarche admin credentials writes; no pod mounts
// another identity's key, and no two pods share one.
func TestDeployK8sTemporalKeys(t *testing.T) {
	kz, objects := readK8s(t)
	generated := map[string][]string{}
	for _, g := range kz.SecretGenerator {
		generated[g.Name] = append(slices.Clone(g.Files), g.Envs...)
	}
	identities := k8sTemporalIdentities()
	users := map[string][]string{} // key secret -> pods mounting it
	for what, tpl := range k8sPods(objects) {
		if len(tpl.Spec.Containers) != 1 {
			t.Errorf("deploy/k8s %s: %d containers, want 1", what, len(tpl.Spec.Containers))
			continue
		}
		c := tpl.Spec.Containers[0]
		env := c.env()
		mounts := tpl.secretFileMounts(c)
		var keys []string
		for s := range mounts {
			if strings.HasPrefix(s, k8sTemporalKeyPrefix) {
				keys = append(keys, s)
				users[s] = append(users[s], what)
			}
		}
		_, dials := env["DEMARCHE_TEMPORAL_ADDRESS"]
		tlsClient := false
		for s := range mounts {
			tlsClient = tlsClient || strings.HasPrefix(s, k8sTemporalTLSPrefix)
		}
		id, known := identities[what]
		if !dials && !tlsClient && !known {
			if len(keys) != 0 || env[temporalx.EnvKeyFile] != "" {
				t.Errorf("deploy/k8s %s: does not dial Temporal but holds Temporal keys %v", what, keys)
			}
			continue
		}
		if !known {
			t.Errorf("deploy/k8s %s: dials Temporal, but no Temporal identity is its own (k8sTemporalIdentities; compose.yaml mounts one per client)", what)
			continue
		}
		secret := k8sTemporalKeyPrefix + id
		if !dials {
			t.Errorf("deploy/k8s %s: no DEMARCHE_TEMPORAL_ADDRESS, though it is the Temporal client %s", what, id)
		}
		if got := env[temporalx.EnvKeyFile]; got != cluster.TemporalKeyFile {
			t.Errorf("deploy/k8s %s: %s %q, want %q (its own identity's API key: the frontend authorizes every caller by it)", what, temporalx.EnvKeyFile, got, cluster.TemporalKeyFile)
		}
		if !slices.Equal(keys, []string{secret}) {
			t.Errorf("deploy/k8s %s: Temporal keys mounted %v, want its own identity's alone (%s)", what, keys, secret)
		}
		if got, want := mounts[secret], [2]string{cluster.TemporalKeyFile, id + ".key"}; got != want {
			t.Errorf("deploy/k8s %s: secret %s mounted at %q (file %q), want its file %s at %s", what, secret, got[0], got[1], want[1], want[0])
		}
		if got, want := generated[secret], []string{"secrets/" + temporalx.KeyFile(temporalx.CredentialsDir, id)}; !slices.Equal(got, want) {
			t.Errorf("deploy/k8s %s: secret %s is generated from %v, want %v (demarche admin credentials writes it)", what, secret, got, want)
		}
	}
	for secret, pods := range users {
		if len(pods) > 1 {
			slices.Sort(pods)
			t.Errorf("deploy/k8s: the Temporal key %s is mounted by %v: every Temporal client has its own identity's key, shared with none", secret, pods)
		}
	}
	for what := range identities {
		kind, name, _ := strings.Cut(what, " ")
		if _, ok := objects[kind][name]; !ok {
			t.Errorf("deploy/k8s has no %s (a Temporal client of compose.yaml)", what)
		}
	}
	// The same Temporal clients with the same identities as compose.yaml.
	b, err := os.ReadFile(filepath.Join(composeDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	fromCompose := map[string]string{}
	for name, svc := range cf.Services {
		for _, sec := range svc.Secrets {
			if id, ok := strings.CutPrefix(sec.Source, "temporal-key-"); ok && id != "hashes" {
				kind := "Deployment"
				if name == "provision" {
					kind = "Job"
				}
				fromCompose[kind+" "+name] = id
			}
		}
	}
	if !maps.Equal(fromCompose, identities) {
		t.Errorf("deploy/k8s's Temporal clients and identities %v, compose.yaml's %v", identities, fromCompose)
	}
}

// Temporal is demarche temporal-server (the engine of compose.yaml and the
// cluster test), never a server that authorizes nobody: on the PostgreSQL of
// the chart values it replaces, with mTLS, the key hashes of every identity
// (--key-hashes), one replica, reached through the Service the clients dial;
// the UI reads through it as the observer.
func TestDeployK8sTemporalServer(t *testing.T) {
	kz, objects := readK8s(t)
	generated := map[string][]string{}
	for _, g := range kz.SecretGenerator {
		generated[g.Name] = append(slices.Clone(g.Files), g.Envs...)
	}
	errorf := func(what, format string, args ...any) {
		t.Helper()
		t.Errorf("deploy/k8s %s: %s", what, fmt.Sprintf(format, args...))
	}
	// Any pod running a Temporal server runs Démarche's, with the key hashes.
	servers := 0
	for what, tpl := range k8sPods(objects) {
		for _, c := range tpl.Spec.Containers {
			args := slices.Concat(c.Command, c.Args)
			upstream := strings.Contains(c.Image, "temporalio/server") || strings.Contains(c.Image, "temporalio/auto-setup")
			if upstream {
				errorf(what, "runs %s: the upstream server cannot load Démarche's authorizer; run demarche temporal-server", c.Image)
			}
			if len(args) == 0 || args[0] != "temporal-server" {
				continue
			}
			servers++
			if what != "Deployment "+k8sTemporalServer {
				errorf(what, "runs temporal-server: deploy/k8s runs one, the Deployment %s", k8sTemporalServer)
			}
			if !slices.Contains(args, "--key-hashes") {
				errorf(what, "temporal-server without --key-hashes: the frontend must authorize every caller by its API key")
			}
		}
	}
	if servers != 1 {
		t.Errorf("deploy/k8s runs %d Temporal servers, want 1 (Deployment %s)", servers, k8sTemporalServer)
	}
	what := "Deployment " + k8sTemporalServer
	d, ok := objects["Deployment"][k8sTemporalServer]
	if !ok {
		t.Fatalf("deploy/k8s has no %s (demarche temporal-server)", what)
	}
	tpl := d.Spec.Template
	if len(tpl.Spec.Containers) != 1 {
		t.Fatalf("deploy/k8s %s: %d containers, want 1", what, len(tpl.Spec.Containers))
	}
	c := tpl.Spec.Containers[0]
	if c.Image != "demarche" || len(c.Command) != 0 || len(c.Args) == 0 || c.Args[0] != "temporal-server" || len(c.Args)%2 != 1 {
		t.Fatalf("deploy/k8s %s: image %q command %q args %q, want the demarche image's temporal-server and flag pairs", what, c.Image, c.Command, c.Args)
	}
	// Static membership: two processes on one database would fight over the shards.
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != "Recreate" {
		errorf(what, "replicas %v strategy %q: want 1 and Recreate (the server's services find each other as one host)", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	if !selects(matchLabels(t, d.Spec.Selector), tpl.Metadata.Labels) {
		errorf(what, "selector does not select its pods (labels %v)", tpl.Metadata.Labels)
	}
	flags := map[string]string{}
	for i := 1; i+1 < len(c.Args); i += 2 {
		flags[c.Args[i]] = c.Args[i+1]
	}
	for flag, want := range map[string]string{
		"--host": "0.0.0.0", "--port": fmt.Sprint(cluster.TemporalPort),
		"--postgres-host": "postgres", "--postgres-port": fmt.Sprint(cluster.PostgresPort), "--postgres-user": cluster.PostgresUser,
		"--postgres-password-file": cluster.PostgresPasswordFile, "--database": cluster.TemporalDatabase, "--visibility-database": cluster.VisibilityDatabase,
		"--history-shards": fmt.Sprint(k8sHistoryShards), "--tls-server-name": k8sTemporalFrontend,
		"--key-hashes": cluster.TemporalKeyHashesFile,
	} {
		if flags[flag] != want {
			errorf(what, "%s %q, want %q", flag, flags[flag], want)
		}
	}
	mounts := tpl.secretFileMounts(c)
	for _, flag := range []string{"--tls-cert", "--tls-key", "--tls-ca"} {
		if !strings.HasPrefix(flags[flag], "/run/secrets/temporal-tls/") {
			errorf(what, "%s %q: a frontend beyond loopback takes mTLS clients only", flag, flags[flag])
		}
		if f := filepath.Base(flags[flag]); !slices.Contains(generated["demarche-temporal-server-tls"], "secrets/temporal-tls/"+f) {
			errorf(what, "%s names %s, which the secret demarche-temporal-server-tls does not hold (%v)", flag, f, generated["demarche-temporal-server-tls"])
		}
	}
	if mounts["demarche-temporal-server-tls"][0] != "/run/secrets/temporal-tls" {
		errorf(what, "the demarche-temporal-server-tls secret is not mounted at /run/secrets/temporal-tls")
	}
	if got, want := mounts["demarche-temporal-server-key-hashes"], [2]string{cluster.TemporalKeyHashesFile, temporalx.KeyHashesFile}; got != want {
		errorf(what, "the key hashes are mounted at %q (file %q), want the secret demarche-temporal-server-key-hashes's %s at %s", got[0], got[1], want[1], want[0])
	}
	if got, want := generated["demarche-temporal-server-key-hashes"], []string{"secrets/" + temporalx.CredentialsDir + "/" + temporalx.KeyHashesFile}; !slices.Equal(got, want) {
		errorf(what, "demarche-temporal-server-key-hashes is generated from %v, want %v (demarche admin credentials writes it)", got, want)
	}
	if got := mounts["temporal-postgres"]; got != [2]string{cluster.PostgresPasswordFile, "password"} {
		errorf(what, "the PostgreSQL password is mounted at %q (file %q), want the secret temporal-postgres's password at %s", got[0], got[1], cluster.PostgresPasswordFile)
	}
	for s := range mounts {
		if strings.HasPrefix(s, k8sTemporalKeyPrefix) || strings.HasPrefix(s, "demarche-nats-") || s == "demarche-codec-key" {
			errorf(what, "mounts %s: the server holds the keys' hashes, never a client's key or credentials", s)
		}
	}
	// The key hashes and the server's key are the server's alone.
	for pod, ptpl := range k8sPods(objects) {
		if pod == what || len(ptpl.Spec.Containers) != 1 {
			continue
		}
		m := ptpl.secretMounts(ptpl.Spec.Containers[0])
		for _, s := range []string{"demarche-temporal-server-key-hashes", "demarche-temporal-server-tls", "temporal-postgres"} {
			if _, ok := m[s]; ok {
				errorf(pod, "mounts %s, the Temporal server's alone", s)
			}
		}
	}
	// The Service every client dials reaches the frontend.
	if svc, ok := objects["Service"][k8sTemporalFrontend]; !ok {
		t.Errorf("deploy/k8s has no Service %s (the address every Temporal client dials)", k8sTemporalFrontend)
	} else {
		if !selects(matchLabels(t, svc.Spec.Selector), tpl.Metadata.Labels) {
			errorf("Service "+k8sTemporalFrontend, "does not select the Temporal server's pods")
		}
		ok := false
		for _, p := range svc.Spec.Ports {
			ok = ok || (p.Port == cluster.TemporalPort && c.port(p.TargetPort) == cluster.TemporalPort)
		}
		if !ok {
			errorf("Service "+k8sTemporalFrontend, "no port %d targets the frontend's %d", cluster.TemporalPort, cluster.TemporalPort)
		}
	}
	// The UI: demarche temporal-ui, read-only as the observer (its key:
	// TestDeployK8sTemporalKeys), decrypting through the gateway's codec endpoint.
	uiWhat := "Deployment temporal-ui"
	ui, ok := objects["Deployment"]["temporal-ui"]
	if !ok || len(ui.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("deploy/k8s has no %s with one container", uiWhat)
	}
	uc := ui.Spec.Template.Spec.Containers[0]
	if len(uc.Args) < 5 || !slices.Equal(uc.Args[:5], []string{"temporal-ui", "--host", "0.0.0.0", "--port", "8080"}) || uc.Image != "demarche" {
		errorf(uiWhat, "image %q args %q, want demarche temporal-ui --host 0.0.0.0 --port 8080", uc.Image, uc.Args)
	}
	codec := ""
	for i := 0; i+1 < len(uc.Args); i++ {
		if uc.Args[i] == "--codec-endpoint" {
			codec = uc.Args[i+1]
		}
	}
	if !strings.HasPrefix(codec, "https://") || !strings.HasSuffix(codec, "/v1/codec/"+temporalx.DefaultNamespace) {
		errorf(uiWhat, "--codec-endpoint %q, want https://<gateway>/v1/codec/%s", codec, temporalx.DefaultNamespace)
	}
	env := uc.env()
	if got, want := env["DEMARCHE_TEMPORAL_ADDRESS"], fmt.Sprintf("%s:%d", k8sTemporalFrontend, cluster.TemporalPort); got != want {
		errorf(uiWhat, "DEMARCHE_TEMPORAL_ADDRESS %q, want %q", got, want)
	}
	for _, v := range []string{"DEMARCHE_TEMPORAL_TLS_CERT", "DEMARCHE_TEMPORAL_TLS_KEY", "DEMARCHE_TEMPORAL_TLS_CA"} {
		if !strings.HasPrefix(env[v], "/run/secrets/temporal-tls/") {
			errorf(uiWhat, "%s %q: the Temporal frontend takes mTLS clients only", v, env[v])
		}
	}
	if env["DEMARCHE_TEMPORAL_TLS_SERVER_NAME"] != k8sTemporalFrontend {
		errorf(uiWhat, "DEMARCHE_TEMPORAL_TLS_SERVER_NAME %q, want %s", env["DEMARCHE_TEMPORAL_TLS_SERVER_NAME"], k8sTemporalFrontend)
	}
	if ui.Spec.Template.secretMounts(uc)[k8sTemporalTLSPrefix+temporalx.IdentityObserver] != "/run/secrets/temporal-tls" {
		errorf(uiWhat, "the observer's client certificate %s%s is not mounted at /run/secrets/temporal-tls", k8sTemporalTLSPrefix, temporalx.IdentityObserver)
	}
}

// A pod that runs as a user other than root reads its secrets: the files of a
// secret volume are root's (mode 0400 here), and the pod's fsGroup, its
// user's, is what lets that user read its credentials and keys.
func TestDeployK8sSecretsReadable(t *testing.T) {
	_, objects := readK8s(t)
	for what, tpl := range k8sPods(objects) {
		for _, c := range tpl.Spec.Containers {
			if len(tpl.secretMounts(c)) == 0 || c.SecurityContext.RunAsUser == nil || *c.SecurityContext.RunAsUser == 0 {
				continue
			}
			if fs := tpl.Spec.SecurityContext.FSGroup; fs == nil || *fs != *c.SecurityContext.RunAsUser {
				t.Errorf("deploy/k8s %s: runs as user %d with secrets mounted but fsGroup %v: it cannot read its own credentials", what, *c.SecurityContext.RunAsUser, fs)
			}
		}
	}
}
