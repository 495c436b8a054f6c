//go:build tools

// Package engine pins the Pulumi CLI as a build dependency so that
// `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` resolves at the pinned version.
package engine

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
