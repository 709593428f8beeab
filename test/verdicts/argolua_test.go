package main

// The shipped Argo CD health customizations, run as Argo CD runs them, on
// workload objects captured from the control plane during in-place rollouts
// (testdata/, written by test/e2e/verdicts.test.ts with VERDICTS_FIXTURES=1)
// and on variations of them.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const luaDir = "../../integrations/argocd/lua"

// installed is what a user pastes: the scripts as argocd-cm.yaml holds them.
func installed(t *testing.T) map[string]HealthScript {
	t.Helper()
	raw, err := os.ReadFile("../../integrations/argocd/argocd-cm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatalf("argocd-cm.yaml: %v", err)
	}
	out := map[string]HealthScript{}
	for _, c := range customizations {
		script, ok := cm.Data["resource.customizations.health."+c.key]
		if !ok {
			t.Fatalf("argocd-cm.yaml has no health customization for %s", c.key)
		}
		out[c.key] = HealthScript{Lua: script, UseOpenLibs: cm.Data["resource.customizations.useOpenLibs."+c.key] == "true"}
	}
	return out
}

func TestArgoCDConfigMapIsGeneratedFromTheLua(t *testing.T) {
	scripts, err := loadScripts(luaDir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../integrations/argocd/argocd-cm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != renderArgoCDConfigMap(scripts) {
		t.Fatal("integrations/argocd/argocd-cm.yaml is stale: in test/verdicts run `go run . argocd-cm --lua ../../integrations/argocd/lua > ../../integrations/argocd/argocd-cm.yaml`")
	}
	for key, s := range installed(t) {
		if strings.TrimRight(s.Lua, "\n") != strings.TrimRight(scripts[key].Lua, "\n") || !s.UseOpenLibs {
			t.Errorf("%s: the YAML does not carry the script as written, with useOpenLibs", key)
		}
	}
}

type fixture struct {
	Scenario string         `json:"scenario"`
	Truth    string         `json:"truth"`
	Object   map[string]any `json:"object"`
}

func fixtures(t *testing.T) map[string]fixture {
	t.Helper()
	files, _ := filepath.Glob("testdata/*.json")
	out := map[string]fixture{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx fixture
		if err := json.Unmarshal(raw, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = fx
	}
	// Each scenario the e2e suite captures must be here, or the tables below prove little.
	for _, s := range []string{"deployment-rollout", "statefulset-rollout", "deployment-stall", "statefulset-stall"} {
		n := 0
		for _, fx := range out {
			if fx.Scenario == s {
				n++
			}
		}
		if n < 2 {
			t.Fatalf("testdata has %d fixtures of %s; capture them with VERDICTS_FIXTURES=1 npx vitest run --project e2e test/e2e/verdicts.test.ts", n, s)
		}
	}
	return out
}

func health(t *testing.T, scripts map[string]HealthScript, object map[string]any) Health {
	t.Helper()
	u := &unstructured.Unstructured{Object: object}
	gk := u.GroupVersionKind().GroupKind()
	return argoLuaHealth(scripts[gk.Group+"_"+gk.Kind], object)
}

// The truth from the pods at each captured state bounds what the customization
// may say: never ahead of the pods (Healthy before they are done, Degraded
// before one stalled), never Suspended while they are being moved. Lagging one
// status write behind is allowed here; the e2e suite bounds the lag (10 s).
func TestCapturedRolloutsReadTheTruth(t *testing.T) {
	scripts := installed(t)
	allowed := map[string][]string{
		"in progress": {"Progressing"},
		"done":        {"Healthy", "Progressing"},
		"stalled":     {"Degraded", "Progressing"},
	}
	final := map[string]string{"deployment-rollout": "Healthy", "statefulset-rollout": "Healthy", "deployment-stall": "Degraded", "statefulset-stall": "Degraded"}
	reached := map[string]bool{}
	all := fixtures(t)
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		fx := all[name]
		h := health(t, scripts, fx.Object)
		if !slices.Contains(allowed[fx.Truth], h.Status) {
			t.Errorf("%s: the pods say %s, the customization %s (%s)", name, fx.Truth, h.Status, h.Message)
		}
		if h.Status == final[fx.Scenario] {
			reached[fx.Scenario] = true
		}
	}
	for scenario, status := range final {
		if !reached[scenario] {
			t.Errorf("%s: no captured state reads %s", scenario, status)
		}
	}
}

// Without an in-place rollout the customization must say what Argo CD's own check says.
func TestWithoutARolloutTheBuiltInVerdictStands(t *testing.T) {
	scripts := installed(t)
	for name, fx := range fixtures(t) {
		cases := map[string]func(map[string]any){
			"as captured":            func(map[string]any) {},
			"paused by its user":     func(o map[string]any) { set(o, true, "spec", "paused") },
			"generation not seen":    func(o map[string]any) { set(o, int64(99), "metadata", "generation") },
			"progress deadline":      func(o map[string]any) { set(o, []any{map[string]any{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}}, "status", "conditions") },
			"one pod not ready":      func(o map[string]any) { bump(o, -1, "status", "readyReplicas"); bump(o, -1, "status", "availableReplicas") },
			"partition 1":            func(o map[string]any) { set(o, map[string]any{"partition": int64(1)}, "spec", "updateStrategy", "rollingUpdate") },
			"OnDelete":               func(o map[string]any) { set(o, map[string]any{"type": "OnDelete"}, "spec", "updateStrategy") },
			"revisions differ":       func(o map[string]any) { set(o, "other-1", "status", "currentRevision"); unset(o, "spec", "updateStrategy", "rollingUpdate") },
			"an old pod terminating": func(o map[string]any) { bump(o, 1, "status", "replicas") },
		}
		for what, change := range cases {
			o := copyObject(t, fx.Object)
			unset(o, "metadata", "annotations", "inplace-gate.dev/rollout-state")
			unset(o, "metadata", "annotations", "inplace-gate.dev/partition")
			change(o)
			builtin, err := argoBuiltinHealth(&unstructured.Unstructured{Object: o})
			if err != nil {
				t.Fatal(err)
			}
			if got := health(t, scripts, o); got != builtin {
				t.Errorf("%s, %s: customization says %+v, Argo CD's built-in %+v", name, what, got, builtin)
			}
		}
	}
}

// Shapes around an in-place rollout that the e2e runs do not all pass through.
func TestInPlaceRolloutShapes(t *testing.T) {
	scripts := installed(t)
	all := fixtures(t)
	pick := func(scenario string, withState bool) map[string]any {
		names := []string{}
		for n := range all {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fx := all[n]
			_, has := get(fx.Object, "metadata", "annotations", "inplace-gate.dev/rollout-state").(string)
			if fx.Scenario == scenario && has == withState {
				// An observed state, so that each case is about its own change.
				o := copyObject(t, fx.Object)
				set(o, get(o, "metadata", "generation"), "status", "observedGeneration")
				return o
			}
		}
		t.Fatalf("no %s fixture (rollout state: %v)", scenario, withState)
		return nil
	}
	state := func(o map[string]any) map[string]any {
		var s map[string]any
		if err := json.Unmarshal([]byte(get(o, "metadata", "annotations", "inplace-gate.dev/rollout-state").(string)), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	setState := func(o map[string]any, s map[string]any) {
		raw, _ := json.Marshal(s)
		set(o, string(raw), "metadata", "annotations", "inplace-gate.dev/rollout-state")
	}

	cases := []struct {
		name, scenario string
		change         func(o map[string]any)
		status, says   string
	}{
		{"a Deployment held paused by the rollout", "deployment-rollout", func(map[string]any) {}, "Progressing", "In-place rollout to app="},
		{"stalled, written by the watcher", "deployment-rollout", func(o map[string]any) { s := state(o); s["stalled"] = "dep-0"; setState(o, s) }, "Degraded", "dep-0 did not come back"},
		{"a progress deadline passed mid-rollout", "deployment-rollout", func(o map[string]any) {
			set(o, []any{map[string]any{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}}, "status", "conditions")
		}, "Degraded", "exceeded its progress deadline"},
		{"held at inplace-gate.dev/partition", "deployment-rollout", func(o map[string]any) { set(o, "2", "metadata", "annotations", "inplace-gate.dev/partition") }, "Progressing", "inplace-gate.dev/partition=2"},
		{"an unreadable rollout state", "deployment-rollout", func(o map[string]any) { set(o, `{"images":`, "metadata", "annotations", "inplace-gate.dev/rollout-state") }, "Degraded", "unreadable"},
		{"a rollout state without its images", "statefulset-rollout", func(o map[string]any) { set(o, `{"startedAt":"x"}`, "metadata", "annotations", "inplace-gate.dev/rollout-state") }, "Degraded", "needs images and startedAt"},
		{"a StatefulSet held at partition = replicas, no pod updated", "statefulset-rollout", func(o map[string]any) {
			set(o, int64(0), "status", "updatedReplicas")
		}, "Progressing", "0 out of 3 pods updated"},
		{"every pod counted updated and Ready before the watcher ended the rollout", "statefulset-rollout", func(o map[string]any) {
			set(o, int64(3), "status", "updatedReplicas")
			set(o, int64(3), "status", "readyReplicas")
		}, "Progressing", "3 out of 3 pods updated, 3 of 3 ready"},
		{"updated but one pod not Ready yet", "statefulset-rollout", func(o map[string]any) {
			set(o, int64(3), "status", "updatedReplicas")
			set(o, int64(2), "status", "readyReplicas")
		}, "Progressing", "2 of 3 ready"},
		{"the user's partition 1 kept in the state: two to update", "statefulset-rollout", func(o map[string]any) {
			s := state(o)
			s["partition"] = 1
			setState(o, s)
			set(o, int64(1), "status", "updatedReplicas")
		}, "Progressing", "1 out of 2 pods updated"},
		{"held by inplace-gate.dev/partition, the pods past it done", "statefulset-rollout", func(o map[string]any) {
			set(o, "2", "metadata", "annotations", "inplace-gate.dev/partition")
			set(o, int64(1), "status", "updatedReplicas")
			set(o, int64(3), "status", "readyReplicas")
		}, "Suspended", "held at inplace-gate.dev/partition=2: 1 pods updated"},
		{"held by inplace-gate.dev/partition, a pod past it still out", "statefulset-rollout", func(o map[string]any) {
			set(o, "2", "metadata", "annotations", "inplace-gate.dev/partition")
			set(o, int64(1), "status", "updatedReplicas")
			set(o, int64(2), "status", "readyReplicas")
		}, "Progressing", "1 out of 1 pods updated, 2 of 3 ready"},
		{"a StatefulSet's stall", "statefulset-rollout", func(o map[string]any) { s := state(o); s["stalled"] = "sts-2"; setState(o, s) }, "Degraded", "sts-2 did not come back"},
		{"a StatefulSet spec not yet observed", "statefulset-rollout", func(o map[string]any) { bump(o, 1, "metadata", "generation") }, "Progressing", "spec update to be observed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := pick(c.scenario, true)
			c.change(o)
			h := health(t, scripts, o)
			if h.Status != c.status || !strings.Contains(h.Message, c.says) {
				t.Errorf("got %s %q, want %s with %q", h.Status, h.Message, c.status, c.says)
			}
		})
	}
}

// The runner behaves as Argo CD's where a script goes wrong.
func TestRunnerAsArgoCD(t *testing.T) {
	obj := map[string]any{"spec": map[string]any{"replicas": int64(2)}}
	cases := []struct {
		name   string
		script HealthScript
		status string
		says   string
	}{
		{"the string library needs useOpenLibs", HealthScript{Lua: `return { status = string.upper("healthy") }`}, "Unknown", "string"},
		{"with useOpenLibs it is there", HealthScript{Lua: `return { status = string.sub("Healthy!", 1, 7) }`, UseOpenLibs: true}, "Healthy", ""},
		{"obj is the object", HealthScript{Lua: `if obj.spec.replicas == 2 then return { status = "Suspended", message = "two" } end return {}`}, "Suspended", "two"},
		{"a status Argo CD does not know", HealthScript{Lua: `return { status = "Fine" }`}, "Unknown", "invalid health status"},
		{"not a table", HealthScript{Lua: `return "Healthy"`}, "Unknown", "expect table output"},
		{"a runaway script is stopped", HealthScript{Lua: `while true do end`}, "Unknown", "context"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := argoLuaHealth(c.script, obj)
			if h.Status != c.status || !strings.Contains(h.Message, c.says) {
				t.Errorf("got %s %q, want %s with %q", h.Status, h.Message, c.status, c.says)
			}
		})
	}
}

// The JSON reader in inplace.lua, through a script that reports what it read.
func TestLuaJSONReader(t *testing.T) {
	shared, err := os.ReadFile(filepath.Join(luaDir, "inplace.lua"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ in, want string }{
		{`{"images":{"app":"r/p:3.10.1","side":"x"},"startedAt":"2026-12-02T16:00:00Z","partition":2,"stalled":"db-4"}`, "ok images.app=r/p:3.10.1 partition=2 stalled=db-4"},
		{` { "images" : { } , "startedAt" : "a\"b\\c\u0041\n" , "partition" : -1.5e0 } `, "ok images.app=nil partition=-1.5 stalled=nil"},
		{`{"images":{},"startedAt":"x","stalled":null,"list":[1,[true,false],{}]}`, "ok images.app=nil partition=nil stalled=nil"},
		{`{"images":{"app":"x"}`, "error expected ',' or '}'"},
		{`{"images":1} trailing`, "error trailing characters"},
		{`{'images':1}`, "error expected a key"},
		{`{"a":"\q"}`, "error bad escape"},
		{`{"a":"open`, "error unterminated string"},
		{`{"a":nope}`, "error unexpected character"},
		{``, "error unexpected character"},
	}
	for _, c := range cases {
		script := string(shared) + `
local v, err = decodeJSON(obj.text)
if err ~= nil then return { status = "Healthy", message = "error " .. err } end
local app = v.images and v.images.app
return { status = "Healthy", message = "ok images.app=" .. tostring(app) .. " partition=" .. tostring(v.partition) .. " stalled=" .. tostring(v.stalled) }
`
		h := argoLuaHealth(HealthScript{Lua: script, UseOpenLibs: true}, map[string]any{"text": c.in})
		if !strings.HasPrefix(h.Message, c.want) {
			t.Errorf("%s: got %q, want %q", c.in, h.Message, c.want)
		}
	}
}

func copyObject(t *testing.T, o map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	return u.Object
}

func get(o map[string]any, path ...string) any {
	var cur any = o
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func set(o map[string]any, v any, path ...string) {
	if err := unstructured.SetNestedField(o, v, path...); err != nil {
		panic(err)
	}
}

func unset(o map[string]any, path ...string) { unstructured.RemoveNestedField(o, path...) }

func bump(o map[string]any, by int64, path ...string) {
	n, _ := get(o, path...).(int64)
	set(o, n+by, path...)
}
