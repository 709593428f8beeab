//go:build tools

// The commands this module builds. The build tag keeps the file out of every
// build; `go mod tidy` still records their dependencies.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet" // built by build-node.sh for the real nodes
	_ "k8s.io/kubernetes/cmd/kubemark"
)
