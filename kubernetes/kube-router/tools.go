//go:build tools

// Package kuberouter pins kube-router (v2.1.0; see kubernetes/kube-router/VERSION)
// as a build dependency. The test cluster runs only its network policy controller
// (--run-firewall), which enforces NetworkPolicy with iptables and ipset on the
// node; scripts/setup-kubernetes builds it.
package kuberouter

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
