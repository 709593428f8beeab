package main

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/kubectl/pkg/polymorphichelpers"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Verdicts is one line of output: what each tool says of one state of the object.
type Verdicts struct {
	// Milliseconds since the epoch at which this state was seen (watch mode) or read.
	At              int64  `json:"at"`
	ResourceVersion string `json:"resourceVersion"`
	Generation      int64  `json:"generation"`
	Kubectl         struct {
		Done    bool   `json:"done"`
		Message string `json:"message"`
		Error   string `json:"error,omitempty"`
	} `json:"kubectl"`
	Kstatus struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"kstatus"`
	// ArgoCD is the built-in health (a model, see argohealth.go); ArgoCDLua
	// the health with integrations/argocd installed, run through gopher-lua.
	ArgoCD    Health  `json:"argocd"`
	ArgoCDLua *Health `json:"argocdLua,omitempty"`
	// The object judged, with --objects (fixtures are made of these).
	Object map[string]any `json:"object,omitempty"`
}

func computeVerdicts(u *unstructured.Unstructured, scripts map[string]HealthScript) (Verdicts, error) {
	var v Verdicts
	v.ResourceVersion = u.GetResourceVersion()
	v.Generation = u.GetGeneration()

	// kubectl rollout status: the StatusViewer its `rollout status` calls on every watch event.
	viewer, err := polymorphichelpers.StatusViewerFor(u.GroupVersionKind().GroupKind())
	if err != nil {
		return v, fmt.Errorf("kubectl: %w", err)
	}
	msg, done, err := viewer.Status(u, 0)
	v.Kubectl.Done, v.Kubectl.Message = done, strings.TrimSpace(msg)
	if err != nil {
		v.Kubectl.Done, v.Kubectl.Error = false, err.Error()
	}

	// kstatus, as Flux's health checks and cli-utils' status poller compute it.
	res, err := status.Compute(u)
	if err != nil {
		return v, fmt.Errorf("kstatus: %w", err)
	}
	v.Kstatus.Status, v.Kstatus.Message = res.Status.String(), res.Message

	if v.ArgoCD, err = argoBuiltinHealth(u); err != nil {
		return v, fmt.Errorf("argocd: %w", err)
	}
	gk := u.GroupVersionKind().GroupKind()
	if s, ok := scripts[gk.Group+"_"+gk.Kind]; ok {
		h := argoLuaHealth(s, u.Object)
		v.ArgoCDLua = &h
	} else if scripts != nil {
		return v, errors.New("argocd: no shipped health customization for " + gk.String())
	}
	return v, nil
}
