package main

// A model of Argo CD's built-in health checks for apps/v1 Deployment and
// StatefulSet, written from reading gitops-engine's pkg/health
// (health_deployment.go getAppsv1DeploymentHealth, health_statefulset.go
// getAppsv1StatefulSetHealth; argoproj/gitops-engine, commit 0d0c679). Argo CD
// itself cannot be linked here: github.com/argoproj/gitops-engine v0.7.3 imports
// k8s.io/api/autoscaling/v2beta1, gone from k8s.io/api v0.37, and the module
// that now holds it (github.com/argoproj/argo-cd/gitops-engine/v3) does not
// build on this machine's module set. Only the status codes and the order of the
// rules matter to the tests; messages follow Argo CD's wording.

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Health is what Argo CD shows for one resource.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Argo CD's health status codes (gitops-engine pkg/health HealthStatusCode).
var healthCodes = map[string]bool{"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true}

func argoBuiltinHealth(u *unstructured.Unstructured) (Health, error) {
	switch u.GroupVersionKind() {
	case appsv1.SchemeGroupVersion.WithKind("Deployment"):
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			return Health{}, fmt.Errorf("not a Deployment: %w", err)
		}
		return argoDeploymentHealth(&d), nil
	case appsv1.SchemeGroupVersion.WithKind("StatefulSet"):
		var s appsv1.StatefulSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			return Health{}, fmt.Errorf("not a StatefulSet: %w", err)
		}
		return argoStatefulSetHealth(&s), nil
	}
	return Health{}, fmt.Errorf("no model of Argo CD's health for %s", u.GroupVersionKind())
}

func argoDeploymentHealth(d *appsv1.Deployment) Health {
	// Paused comes first: a paused Deployment is Suspended whatever its pods do.
	if d.Spec.Paused {
		return Health{"Suspended", "Deployment is paused"}
	}
	if d.Generation > d.Status.ObservedGeneration {
		return Health{"Progressing", "Waiting for rollout to finish: observed deployment generation less than desired generation"}
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return Health{"Degraded", fmt.Sprintf("Deployment %q exceeded its progress deadline", d.Name)}
		}
	}
	st := d.Status
	switch {
	case d.Spec.Replicas != nil && st.UpdatedReplicas < *d.Spec.Replicas:
		return Health{"Progressing", fmt.Sprintf("Waiting for rollout to finish: %d out of %d new replicas have been updated...", st.UpdatedReplicas, *d.Spec.Replicas)}
	case st.Replicas > st.UpdatedReplicas:
		return Health{"Progressing", fmt.Sprintf("Waiting for rollout to finish: %d old replicas are pending termination...", st.Replicas-st.UpdatedReplicas)}
	case st.AvailableReplicas < st.UpdatedReplicas:
		return Health{"Progressing", fmt.Sprintf("Waiting for rollout to finish: %d of %d updated replicas are available...", st.AvailableReplicas, st.UpdatedReplicas)}
	}
	return Health{"Healthy", ""}
}

func argoStatefulSetHealth(s *appsv1.StatefulSet) Health {
	st := s.Status
	if st.ObservedGeneration == 0 || s.Generation > st.ObservedGeneration {
		return Health{"Progressing", "Waiting for statefulset spec update to be observed..."}
	}
	if s.Spec.Replicas != nil && st.ReadyReplicas < *s.Spec.Replicas {
		return Health{"Progressing", fmt.Sprintf("Waiting for %d pods to be ready...", *s.Spec.Replicas-st.ReadyReplicas)}
	}
	// Any RollingUpdate with a rollingUpdate block is judged by its partition alone (nil counts as met).
	if ru := s.Spec.UpdateStrategy.RollingUpdate; s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && ru != nil {
		if s.Spec.Replicas != nil && ru.Partition != nil && st.UpdatedReplicas < *s.Spec.Replicas-*ru.Partition {
			return Health{"Progressing", fmt.Sprintf("Waiting for partitioned roll out to finish: %d out of %d new pods have been updated...", st.UpdatedReplicas, *s.Spec.Replicas-*ru.Partition)}
		}
		return Health{"Healthy", fmt.Sprintf("partitioned roll out complete: %d new pods have been updated...", st.UpdatedReplicas)}
	}
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return Health{"Healthy", fmt.Sprintf("statefulset has %d ready pods", st.ReadyReplicas)}
	}
	if st.UpdateRevision != st.CurrentRevision {
		return Health{"Progressing", fmt.Sprintf("waiting for statefulset rolling update to complete %d pods at revision %s...", st.UpdatedReplicas, st.UpdateRevision)}
	}
	return Health{"Healthy", fmt.Sprintf("statefulset rolling update complete %d pods at revision %s...", st.CurrentReplicas, st.CurrentRevision)}
}
