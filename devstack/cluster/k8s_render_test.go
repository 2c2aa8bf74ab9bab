package cluster_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/demarche/demarche/devstack/cluster"
)

// k8sNamespace is deploy/k8s's namespace, under the restricted Pod Security profile.
const k8sNamespace = "demarche"

// k8sTypes are the Kubernetes API types deploy/k8s may render, by
// "apiVersion kind": any other object is refused, and each is decoded
// strictly into its type.
var k8sTypes = map[string]func() any{
	"v1 Namespace":                       func() any { return &corev1.Namespace{} },
	"v1 Secret":                          func() any { return &corev1.Secret{} },
	"v1 Service":                         func() any { return &corev1.Service{} },
	"apps/v1 Deployment":                 func() any { return &appsv1.Deployment{} },
	"batch/v1 Job":                       func() any { return &batchv1.Job{} },
	"policy/v1 PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1 NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
}

// strictDecode decodes one rendered object into its API type: an unknown
// or duplicated field, a value of the wrong type or an unknown kind fails
// (what the API server would drop silently or refuse at apply).
func strictDecode(doc []byte) (any, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := sigsyaml.Unmarshal(doc, &head); err != nil {
		return nil, err
	}
	mk, ok := k8sTypes[head.APIVersion+" "+head.Kind]
	if !ok {
		return nil, fmt.Errorf("%s %s: not a type deploy/k8s renders (k8sTypes)", head.APIVersion, head.Kind)
	}
	obj := mk()
	if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", head.APIVersion, head.Kind, err)
	}
	return obj, nil
}

// renderK8s runs kustomize build on deploy/k8s (kustomize's own library,
// what kubectl apply -k runs), with placeholder files for the git-ignored
// secrets its generators read, and decodes every object strictly.
func renderK8s(t *testing.T) []any {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile("/k8s/"+filepath.Base(f), b); err != nil {
			t.Fatal(err)
		}
	}
	kz, _ := readK8s(t)
	for _, g := range kz.SecretGenerator {
		for _, f := range g.Files {
			if _, path, ok := strings.Cut(f, "="); ok {
				f = path
			}
			if err := fs.WriteFile("/k8s/"+f, []byte("placeholder of "+f+"\n")); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range g.Envs {
			if err := fs.WriteFile("/k8s/"+f, []byte("DEMARCHE_PLACEHOLDER=\"$2a$11$placeholder\"\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/k8s")
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s: %v", err)
	}
	var out []any
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := strictDecode(doc)
		if err != nil {
			t.Errorf("kustomize build deploy/k8s: %s %s does not decode strictly against the Kubernetes API types: %v", r.GetKind(), r.GetName(), err)
			continue
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		t.Fatal("kustomize build deploy/k8s rendered nothing")
	}
	return out
}

// The strict decoder is strict: a misspelt field, a field at the wrong
// level and a wrong type are each refused (a lax decoder drops them, and a
// manifest that says less than it seems to passes).
func TestDeployK8sStrictDecodeRefuses(t *testing.T) {
	for what, doc := range map[string]string{
		"misspelt field":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"misplaced field":  "apiVersion: v1\nkind: Service\nmetadata: {name: x, ports: []}\n",
		"wrong type":       "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {selector: yes}\n",
		"duplicated field": "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"unknown kind":     "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
	} {
		if _, err := strictDecode([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", what)
		}
	}
	if _, err := strictDecode([]byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")); err != nil {
		t.Errorf("a valid Namespace is refused: %v", err)
	}
}

// podOf is a rendered workload's pod template, replicas (1 for a Job) and "Kind name".
type podOf struct {
	what     string
	replicas int32
	tpl      corev1.PodTemplateSpec
	selector *metav1.LabelSelector
}

func k8sWorkloads(objs []any) []podOf {
	var out []podOf
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			r := int32(1)
			if o.Spec.Replicas != nil {
				r = *o.Spec.Replicas
			}
			out = append(out, podOf{"Deployment " + o.Name, r, o.Spec.Template, o.Spec.Selector})
		case *batchv1.Job:
			out = append(out, podOf{"Job " + o.Name, 1, o.Spec.Template, o.Spec.Selector})
		}
	}
	return out
}

func selectorMatches(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return s.Matches(labels.Set(l))
}

var digestImage = regexp.MustCompile(`^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$`)

// kustomize build deploy/k8s renders objects that the Kubernetes API types
// accept strictly, all in the restricted namespace; every pod is restricted
// (not root, no escalation, no capability, seccomp RuntimeDefault, read-only
// root with a scratch /tmp, fsGroup for its 0400 secrets), sized (requests
// and limits), pinned by digest; every replicated Deployment has a
// disruption budget that lets a drain through and a spread over nodes.
func TestDeployK8sRendered(t *testing.T) {
	objs := renderK8s(t)
	// The namespace: restricted Pod Security enforced, every object in it.
	var ns *corev1.Namespace
	for _, o := range objs {
		if n, ok := o.(*corev1.Namespace); ok {
			ns = n
			continue
		}
		if m, ok := o.(metav1.Object); ok && m.GetNamespace() != k8sNamespace {
			t.Errorf("%T %s is in namespace %q, want %s", o, m.GetName(), m.GetNamespace(), k8sNamespace)
		}
	}
	if ns == nil || ns.Name != k8sNamespace || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("no Namespace %s labelled pod-security.kubernetes.io/enforce=restricted (%v)", k8sNamespace, ns)
	}

	var pdbs []*policyv1.PodDisruptionBudget
	for _, o := range objs {
		if p, ok := o.(*policyv1.PodDisruptionBudget); ok {
			pdbs = append(pdbs, p)
		}
	}
	workloads := k8sWorkloads(objs)
	if len(workloads) < len(cluster.Services)+3 { // services, temporal, temporal-ui, provision
		t.Errorf("rendered %d workloads, want every service, the Temporal server and UI, and provisioning", len(workloads))
	}
	for _, w := range workloads {
		errorf := func(format string, args ...any) {
			t.Helper()
			t.Errorf("deploy/k8s %s: %s", w.what, fmt.Sprintf(format, args...))
		}
		spec := w.tpl.Spec
		if !selectorMatches(t, w.selector, w.tpl.Labels) && !strings.HasPrefix(w.what, "Job ") {
			errorf("its selector does not select its pods")
		}
		psc := spec.SecurityContext
		if psc == nil {
			errorf("no pod securityContext")
			psc = &corev1.PodSecurityContext{}
		}
		if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			errorf("pod securityContext runAsNonRoot %v runAsUser %v: want a user other than root", psc.RunAsNonRoot, psc.RunAsUser)
		}
		if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			errorf("no seccompProfile RuntimeDefault")
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			errorf("shares the node's network, process or IPC namespace")
		}
		secrets, tmp := false, map[string]bool{}
		for _, v := range spec.Volumes {
			switch {
			case v.Secret != nil:
				secrets = true
				if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400 {
					errorf("secret volume %s mode %v, want 0400", v.Name, v.Secret.DefaultMode)
				}
			case v.EmptyDir != nil:
				tmp[v.Name] = true
			case v.ConfigMap != nil, v.Projected != nil, v.PersistentVolumeClaim != nil:
			default:
				errorf("volume %s is of a type the restricted profile refuses", v.Name)
			}
		}
		if secrets && (psc.FSGroup == nil || psc.RunAsUser == nil || *psc.FSGroup != *psc.RunAsUser) {
			errorf("mounts secrets (root's, 0400) with fsGroup %v for user %v: it cannot read them", psc.FSGroup, psc.RunAsUser)
		}
		if len(spec.InitContainers) != 0 || len(spec.EphemeralContainers) != 0 {
			errorf("init or ephemeral containers: checked nowhere")
		}
		for _, c := range spec.Containers {
			csc := c.SecurityContext
			if csc == nil {
				errorf("container %s: no securityContext", c.Name)
				continue
			}
			if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				errorf("container %s: allowPrivilegeEscalation not false", c.Name)
			}
			if csc.Privileged != nil && *csc.Privileged {
				errorf("container %s: privileged", c.Name)
			}
			if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) != 0 {
				errorf("container %s: capabilities %v, want drop [ALL] and none added", c.Name, csc.Capabilities)
			}
			if csc.RunAsUser != nil && *csc.RunAsUser == 0 || csc.RunAsNonRoot != nil && !*csc.RunAsNonRoot {
				errorf("container %s: runs as root", c.Name)
			}
			if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
				errorf("container %s: root filesystem writable", c.Name)
			}
			scratch := false
			for _, m := range c.VolumeMounts {
				scratch = scratch || (m.MountPath == "/tmp" && tmp[m.Name])
			}
			if !scratch {
				errorf("container %s: read-only root without an emptyDir at /tmp", c.Name)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okR := c.Resources.Requests[r]
				lim, okL := c.Resources.Limits[r]
				if !okR || !okL || req.IsZero() || lim.Cmp(req) < 0 {
					errorf("container %s: %s request %v limit %v: want both, the limit at least the request", c.Name, r, req.String(), lim.String())
				}
			}
			// Memory near the measured idle figures: at least 100 MiB requested
			// for a Démarche process (idle 100-120 MB), 2x headroom at least.
			if mem, lim := c.Resources.Requests.Memory(), c.Resources.Limits.Memory(); mem.Value() < 100<<20 || lim.Value() < 2*mem.Value() {
				errorf("container %s: memory request %v limit %v: want >= 100Mi (idle 100-120 MB measured) and a limit of twice the request or more", c.Name, mem, lim)
			}
			if !digestImage.MatchString(c.Image) {
				errorf("container %s: image %q is not <registry>/<name>@sha256:<64 hex> (images by digest)", c.Name, c.Image)
			}
		}
		// A replicated Deployment: a budget that keeps one through a drain and
		// lets the drain through, replicas spread over nodes.
		if w.replicas > 1 {
			covered := 0
			for _, p := range pdbs {
				if !selectorMatches(t, p.Spec.Selector, w.tpl.Labels) {
					continue
				}
				covered++
				min := p.Spec.MinAvailable
				if min == nil || min.Type != intstr.Int || min.IntVal < 1 || min.IntVal >= w.replicas {
					errorf("PodDisruptionBudget %s minAvailable %v: want 1..replicas-1 (%d replicas)", p.Name, min, w.replicas)
				}
			}
			if covered != 1 {
				errorf("%d replicas and %d PodDisruptionBudgets: want one", w.replicas, covered)
			}
			spread := false
			for _, c := range spec.TopologySpreadConstraints {
				if c.TopologyKey == "kubernetes.io/hostname" && c.WhenUnsatisfiable == corev1.DoNotSchedule && c.MaxSkew == 1 && selectorMatches(t, c.LabelSelector, w.tpl.Labels) {
					spread = true
				}
			}
			if !spread {
				errorf("%d replicas without a topologySpreadConstraint over kubernetes.io/hostname (DoNotSchedule, maxSkew 1) selecting its pods", w.replicas)
			}
		}
	}
}

// policyAllows: the policies selecting a pod (labels l) allow its traffic
// to (egress) pods with labels peer on port, or from them (ingress).
func policyAllows(t *testing.T, pols []*networkingv1.NetworkPolicy, l, peer map[string]string, port int32, egress bool) bool {
	t.Helper()
	for _, p := range pols {
		if !selectorMatches(t, &p.Spec.PodSelector, l) {
			continue
		}
		type rule struct {
			peers []networkingv1.NetworkPolicyPeer
			ports []networkingv1.NetworkPolicyPort
		}
		var rules []rule
		if egress {
			for _, r := range p.Spec.Egress {
				rules = append(rules, rule{r.To, r.Ports})
			}
		} else {
			for _, r := range p.Spec.Ingress {
				rules = append(rules, rule{r.From, r.Ports})
			}
		}
		for _, r := range rules {
			portOK := len(r.ports) == 0
			for _, pp := range r.ports {
				portOK = portOK || (pp.Port != nil && pp.Port.IntVal == port)
			}
			peerOK := len(r.peers) == 0
			for _, pe := range r.peers {
				// Same namespace, by pod labels (a namespace selector reaches other namespaces).
				peerOK = peerOK || (pe.NamespaceSelector == nil && pe.IPBlock == nil && pe.PodSelector != nil && selectorMatches(t, pe.PodSelector, peer))
			}
			if portOK && peerOK {
				return true
			}
		}
	}
	return false
}

// Network policies: everything denied by default, both ways; every pod of
// deploy/k8s is selected by a policy beyond that one; each NATS client may
// reach the NATS servers and each Temporal client the Temporal server, and
// a pod that is not a Temporal client may not; the servers take those
// clients in.
func TestDeployK8sPolicies(t *testing.T) {
	objs := renderK8s(t)
	var pols []*networkingv1.NetworkPolicy
	deny := false
	for _, o := range objs {
		if p, ok := o.(*networkingv1.NetworkPolicy); ok {
			pols = append(pols, p)
			if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 && len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 &&
				slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				deny = true
			}
		}
	}
	if !deny {
		t.Errorf("no default-deny NetworkPolicy (every pod, Ingress and Egress, no rule)")
	}
	natsPods := map[string]string{"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": k8sNATSRelease}
	var temporalPods map[string]string
	for _, w := range k8sWorkloads(objs) {
		if w.what == "Deployment "+k8sTemporalServer {
			temporalPods = w.tpl.Labels
		}
	}
	if temporalPods == nil {
		t.Fatalf("no Deployment %s", k8sTemporalServer)
	}
	for _, w := range k8sWorkloads(objs) {
		l := w.tpl.Labels
		specific := false
		for _, p := range pols {
			if (len(p.Spec.Ingress) > 0 || len(p.Spec.Egress) > 0) && selectorMatches(t, &p.Spec.PodSelector, l) && (len(p.Spec.PodSelector.MatchLabels) > 0 || len(p.Spec.PodSelector.MatchExpressions) > 0) {
				specific = true
			}
		}
		if !specific {
			t.Errorf("deploy/k8s %s: no NetworkPolicy selects its pods (beyond the default deny)", w.what)
		}
		env := map[string]string{}
		for _, c := range w.tpl.Spec.Containers {
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
		}
		_, nats := env["DEMARCHE_NATS_URL"]
		_, temporal := env["DEMARCHE_TEMPORAL_ADDRESS"]
		if nats {
			if !policyAllows(t, pols, l, natsPods, int32(cluster.NATSClientPort), true) {
				t.Errorf("deploy/k8s %s: a NATS client whose egress to the NATS servers (%d) no policy allows", w.what, cluster.NATSClientPort)
			}
			if !policyAllows(t, pols, natsPods, l, int32(cluster.NATSClientPort), false) {
				t.Errorf("deploy/k8s %s: the NATS servers' policies do not let it in on %d", w.what, cluster.NATSClientPort)
			}
		}
		if got := policyAllows(t, pols, l, temporalPods, int32(cluster.TemporalPort), true); got != temporal && w.what != "Deployment "+k8sTemporalServer {
			t.Errorf("deploy/k8s %s: Temporal client %v, egress to the Temporal server allowed %v: want the same", w.what, temporal, got)
		}
		if temporal && !policyAllows(t, pols, temporalPods, l, int32(cluster.TemporalPort), false) {
			t.Errorf("deploy/k8s %s: the Temporal server's policies do not let it in on %d", w.what, cluster.TemporalPort)
		}
		// DNS: every pod resolves the Services it dials.
		dns := false
		for _, p := range pols {
			if selectorMatches(t, &p.Spec.PodSelector, l) {
				for _, r := range p.Spec.Egress {
					for _, pp := range r.Ports {
						dns = dns || (pp.Port != nil && pp.Port.IntVal == 53)
					}
				}
			}
		}
		if !dns {
			t.Errorf("deploy/k8s %s: no egress to DNS (53)", w.what)
		}
	}
	// The gateway takes requests on its HTTP port.
	for _, w := range k8sWorkloads(objs) {
		if w.what == "Deployment gateway" && !policyAllows(t, pols, w.tpl.Labels, nil, int32(cluster.GatewayPort), false) {
			t.Errorf("deploy/k8s: no policy lets requests into the gateway on %d", cluster.GatewayPort)
		}
	}
}
