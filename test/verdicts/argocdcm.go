package main

// The argocd-cm entries that install the shipped health customizations. Each
// script Argo CD runs is standalone, so the shared part (inplace.lua) is put in
// front of each kind's script here, once, instead of copied by hand.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// customizations maps an Argo CD group_kind key to the Lua file of that kind.
var customizations = []struct{ key, file string }{
	{"apps_Deployment", "deployment.lua"},
	{"apps_StatefulSet", "statefulset.lua"},
}

// loadScripts reads the shipped Lua from dir (integrations/argocd/lua), keyed by group_kind.
func loadScripts(dir string) (map[string]HealthScript, error) {
	shared, err := os.ReadFile(filepath.Join(dir, "inplace.lua"))
	if err != nil {
		return nil, err
	}
	out := map[string]HealthScript{}
	for _, c := range customizations {
		body, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			return nil, err
		}
		// The reader uses the string library: Argo CD opens it only with useOpenLibs.
		out[c.key] = HealthScript{Lua: string(shared) + "\n" + string(body), UseOpenLibs: true}
	}
	return out, nil
}

// renderArgoCDConfigMap is integrations/argocd/argocd-cm.yaml: a ConfigMap to
// merge into Argo CD's argocd-cm (kubectl patch or a Helm values file).
func renderArgoCDConfigMap(scripts map[string]HealthScript) string {
	var b strings.Builder
	b.WriteString("# inplace-gate's health customizations for Argo CD: merge into argocd-cm\n")
	b.WriteString("# (kubectl -n argocd patch configmap argocd-cm --patch-file argocd-cm.yaml).\n")
	b.WriteString("# Generated from lua/ by `go run . argocd-cm` in test/verdicts; edit lua/, not this file.\n")
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n  labels:\n    app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\ndata:\n")
	for _, c := range customizations {
		s := scripts[c.key]
		fmt.Fprintf(&b, "  resource.customizations.health.%s: |\n", c.key)
		for _, line := range strings.Split(strings.TrimRight(s.Lua, "\n"), "\n") {
			if line == "" {
				b.WriteString("\n")
			} else {
				b.WriteString("    " + line + "\n")
			}
		}
		fmt.Fprintf(&b, "  resource.customizations.useOpenLibs.%s: %q\n", c.key, fmt.Sprint(s.UseOpenLibs))
	}
	return b.String()
}
