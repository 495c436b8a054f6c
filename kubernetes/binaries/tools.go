//go:build tools

// Package binaries pins the Kubernetes control plane and node binaries as build
// dependencies, so that `go build k8s.io/kubernetes/cmd/<name>` resolves at the
// version in kubernetes/VERSION. scripts/setup-kubernetes builds them.
package binaries

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
