package cluster_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/temporalx"
)

const k8sDir = "../../deploy/k8s"

// What deploy/k8s names besides the topology: the charts' release names
// make the hosts the services dial.
const (
	// k8sNATSRelease is the nats chart's release: servers <release>-N, reached
	// through the headless service <release>-headless.
	k8sNATSRelease = "nats"
	// k8sTemporalFrontend is the temporal chart's frontend service (release "temporal").
	k8sTemporalFrontend = "temporal-frontend"
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
		Replicas *int           `yaml:"replicas"`
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
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
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
	for _, v := range t.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				out[v.Secret.SecretName] = m.MountPath
			}
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
			if strings.HasPrefix(s, "demarche-nats-") {
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
	}
	checkTemporal := func(what string, tpl k8sPodTemplate, c k8sContainer, needs bool) {
		env := c.env()
		mounts := tpl.secretMounts(c)
		if !needs {
			if _, ok := env["DEMARCHE_TEMPORAL_ADDRESS"]; ok || mounts["demarche-temporal-tls"] != "" || mounts["demarche-codec-key"] != "" {
				errorf(what, "reaches Temporal or holds the codec key, which it does not need")
			}
			return
		}
		if got, want := env["DEMARCHE_TEMPORAL_ADDRESS"], fmt.Sprintf("%s:%d", k8sTemporalFrontend, cluster.TemporalPort); got != want {
			errorf(what, "DEMARCHE_TEMPORAL_ADDRESS %q, want %q (the chart's frontend)", got, want)
		}
		for _, v := range []string{"DEMARCHE_TEMPORAL_TLS_CERT", "DEMARCHE_TEMPORAL_TLS_KEY", "DEMARCHE_TEMPORAL_TLS_CA"} {
			if !strings.HasPrefix(env[v], "/run/secrets/temporal-tls/") {
				errorf(what, "%s %q: the Temporal frontend takes mTLS clients only", v, env[v])
			}
		}
		if env["DEMARCHE_TEMPORAL_TLS_SERVER_NAME"] != k8sTemporalFrontend {
			errorf(what, "DEMARCHE_TEMPORAL_TLS_SERVER_NAME %q, want %s (the frontend certificate's name in temporal-values.yaml)", env["DEMARCHE_TEMPORAL_TLS_SERVER_NAME"], k8sTemporalFrontend)
		}
		if mounts["demarche-temporal-tls"] != "/run/secrets/temporal-tls" {
			errorf(what, "the demarche-temporal-tls secret is not mounted at /run/secrets/temporal-tls")
		}
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
		// Funds are opened by one instance alone (deploy/README.md).
		if slices.Contains(svc.Args, "--open-funds") && (d.Spec.Replicas == nil || *d.Spec.Replicas != 1) {
			errorf(what, "more than one replica: the instance with --open-funds runs alone")
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

// The values for the upstream charts give the engines of the topology: a
// NATS cluster of 3 with JetStream on file storage, sync_interval always and
// Démarche's users; Temporal on PostgreSQL for both stores, mTLS, and the UI
// decrypting through the gateway's codec endpoint.
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
	if !strings.Contains(fmt.Sprint(at(nats, "container", "merge", "envFrom")), "name:demarche-nats-passwords") {
		t.Errorf("deploy/k8s/%s: the servers do not get DEMARCHE_NATS_<IDENTITY>_PASSWORD from demarche-nats-passwords", nv)
	}
	passwords := false
	for _, g := range kz.SecretGenerator {
		passwords = passwords || (g.Name == "demarche-nats-passwords" && slices.Equal(g.Envs, []string{"secrets/nats-passwords.env"}))
	}
	if !passwords {
		t.Errorf("deploy/k8s/kustomization.yaml does not generate demarche-nats-passwords from secrets/nats-passwords.env")
	}

	const tv = "temporal-values.yaml"
	tmp := readValues(t, tv)
	for store, db := range map[string]string{"default": cluster.TemporalDatabase, "visibility": cluster.VisibilityDatabase} {
		p := []string{"server", "config", "persistence", store}
		check(tv, tmp, "sql", append(p, "driver")...)
		check(tv, tmp, "postgres12", append(p, "sql", "driver")...)
		check(tv, tmp, db, append(p, "sql", "database")...)
		check(tv, tmp, cluster.PostgresUser, append(p, "sql", "user")...)
		check(tv, tmp, cluster.PostgresPort, append(p, "sql", "port")...)
		if at(tmp, append(p, "sql", "existingSecret")...) == nil || at(tmp, append(p, "sql", "password")...) != nil {
			t.Errorf("deploy/k8s/%s %s: the PostgreSQL password comes from existingSecret, never the values", tv, strings.Join(p, "."))
		}
	}
	check(tv, tmp, "default", "server", "config", "persistence", "defaultStore")
	for _, side := range []string{"frontend", "internode"} {
		check(tv, tmp, true, "server", "config", "tls", side, "server", "requireClientAuth")
	}
	check(tv, tmp, k8sTemporalFrontend, "server", "config", "tls", "frontend", "client", "serverName")
	for _, off := range []string{"cassandra", "mysql", "elasticsearch"} {
		check(tv, tmp, false, off, "enabled")
	}
	check(tv, tmp, true, "web", "enabled")
	uiEnv := map[string]string{}
	if list, ok := at(tmp, "web", "additionalEnv").([]any); ok {
		for _, e := range list {
			uiEnv[fmt.Sprint(at(e, "name"))] = fmt.Sprint(at(e, "value"))
		}
	}
	codec := uiEnv["TEMPORAL_CODEC_ENDPOINT"]
	if !strings.HasPrefix(codec, "https://") || !strings.HasSuffix(codec, "/v1/codec/"+temporalx.DefaultNamespace) {
		t.Errorf("deploy/k8s/%s web TEMPORAL_CODEC_ENDPOINT %q, want https://<gateway>/v1/codec/%s", tv, codec, temporalx.DefaultNamespace)
	}
	for _, v := range []string{"TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"} {
		if uiEnv[v] == "" {
			t.Errorf("deploy/k8s/%s web: no %s (the frontend takes mTLS clients only)", tv, v)
		}
	}
}
