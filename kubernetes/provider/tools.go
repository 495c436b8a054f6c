//go:build tools

// Package provider pins the official Pulumi Kubernetes provider plugin
// (pulumi-resource-kubernetes, v4.25.0; see kubernetes/provider/VERSION) as a
// build dependency. scripts/setup-kubernetes copies the command's folder next
// to this file, runs its generate step, and builds it.
package provider

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes"
)
