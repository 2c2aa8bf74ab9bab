// Package playbook loads the playbooks that say, per crisis type, which stages
// run, in which order, which side by side, and with which deadlines. Playbooks
// are YAML files in files/, embedded in the binary and validated when loaded;
// the one a crisis uses is copied into its workflow input.
package playbook

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

//go:embed files/*.yaml
var builtin embed.FS

// ErrNotFound is returned for an unknown playbook name.
var ErrNotFound = errors.New("playbook not found")

// file is the YAML format; see files/general.yaml for a commented example.
type file struct {
	Name        string              `yaml:"name"`
	Version     string              `yaml:"version"`
	CrisisType  string              `yaml:"crisis_type"`
	Description string              `yaml:"description"`
	Phases      [][]string          `yaml:"phases"`
	Deadlines   map[string]deadline `yaml:"deadlines"`
	StandbyTeam *deadline           `yaml:"standby_team"`
	FollowUp    *followUp           `yaml:"follow_up"`
}

type deadline struct {
	Due    string `yaml:"due"`
	AtRisk string `yaml:"at_risk"`
}

type followUp struct {
	Interval        string `yaml:"interval"`
	CheckIns        int32  `yaml:"check_ins"`
	CheckInsPerRun  int32  `yaml:"check_ins_per_run"`
	RelapseSeverity int32  `yaml:"relapse_severity"`
}

// Parse reads one playbook. Errors name the source and every field that fails.
func Parse(source string, data []byte) (*demarchev1.Playbook, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("playbook %s: %w", source, err)
	}
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	dur := func(field, v string) *durationpb.Duration {
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			bad(field, "%q is not a duration (e.g. 72h, 90m)", v)
			return nil
		}
		return durationpb.New(d)
	}
	p := &demarchev1.Playbook{Name: f.Name, Version: f.Version, Description: strings.TrimSpace(f.Description)}
	if f.CrisisType != "" {
		t, err := demarchev1.ParseCrisisType(f.CrisisType)
		if err != nil {
			bad("crisis_type", "%q is not a crisis type (allowed: %s)", f.CrisisType, strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
		}
		p.CrisisType = t
	}
	used := map[string]bool{}
	for i, names := range f.Phases {
		ph := &demarchev1.PlaybookPhase{}
		for j, name := range names {
			st, err := demarchev1.ParseStage(name)
			if err != nil {
				bad(fmt.Sprintf("phases[%d][%d]", i, j), "%q is not a stage (allowed: %s)", name, strings.Join(demarchev1.StageSlugs()[:6], ", "))
				continue
			}
			spec := &demarchev1.StageSpec{Stage: st}
			if d, ok := f.Deadlines[st.Slug()]; ok {
				used[st.Slug()] = true
				spec.Deadline = &demarchev1.Deadline{Due: dur("deadlines."+st.Slug()+".due", d.Due), AtRisk: dur("deadlines."+st.Slug()+".at_risk", d.AtRisk)}
			}
			ph.Stages = append(ph.Stages, spec)
		}
		p.Phases = append(p.Phases, ph)
	}
	for _, name := range sortedKeys(f.Deadlines) {
		if !used[name] {
			bad("deadlines."+name, "no phase runs %q: remove the deadline or add the stage to a phase", name)
		}
	}
	if f.StandbyTeam != nil {
		p.StandbyTeam = &demarchev1.Deadline{Due: dur("standby_team.due", f.StandbyTeam.Due), AtRisk: dur("standby_team.at_risk", f.StandbyTeam.AtRisk)}
	}
	if f.FollowUp != nil {
		p.FollowUp = &demarchev1.FollowUpPlan{
			Interval: dur("follow_up.interval", f.FollowUp.Interval), CheckIns: f.FollowUp.CheckIns,
			CheckInsPerRun: f.FollowUp.CheckInsPerRun, RelapseSeverity: f.FollowUp.RelapseSeverity,
		}
	}
	if err := p.Validate(); err != nil {
		var verr *demarchev1.ValidationError
		if errors.As(err, &verr) {
			for _, fe := range verr.Fields {
				errs = append(errs, fe.Error())
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("playbook %s: %w: %s", source, demarchev1.ErrInvalid, strings.Join(errs, "; "))
	}
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// LoadFile reads and validates a playbook file.
func LoadFile(path string) (*demarchev1.Playbook, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("playbook: %w", err)
	}
	return Parse(path, data)
}

// Builtin returns every embedded playbook, by name order. It fails if any is invalid.
func Builtin() ([]*demarchev1.Playbook, error) {
	paths, err := fs.Glob(builtin, "files/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []*demarchev1.Playbook
	names := map[string]string{}
	for _, path := range paths {
		data, err := builtin.ReadFile(path)
		if err != nil {
			return nil, err
		}
		p, err := Parse(filepath.Base(path), data)
		if err != nil {
			return nil, err
		}
		if other, dup := names[p.GetName()]; dup {
			return nil, fmt.Errorf("playbooks %s and %s share the name %q", other, path, p.GetName())
		}
		names[p.GetName()] = path
		out = append(out, p)
	}
	return out, nil
}

// Get returns the embedded playbook of that name.
func Get(name string) (*demarchev1.Playbook, error) {
	all, err := Builtin()
	if err != nil {
		return nil, err
	}
	var known []string
	for _, p := range all {
		if p.GetName() == name {
			return p, nil
		}
		known = append(known, p.GetName())
	}
	return nil, fmt.Errorf("%w: %q (known: %s)", ErrNotFound, name, strings.Join(known, ", "))
}

// ForType returns the playbook of a crisis type, or the general one.
func ForType(t demarchev1.CrisisType) (*demarchev1.Playbook, error) {
	all, err := Builtin()
	if err != nil {
		return nil, err
	}
	var general *demarchev1.Playbook
	for _, p := range all {
		if p.GetCrisisType() == t {
			return p, nil
		}
		if p.GetCrisisType() == demarchev1.CrisisType_CRISIS_TYPE_GENERAL {
			general = p
		}
	}
	if general == nil {
		return nil, fmt.Errorf("%w: none for %s and no general playbook", ErrNotFound, t.Slug())
	}
	return general, nil
}
