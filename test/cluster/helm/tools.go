//go:build tools

// The command this module builds. The build tag keeps the file out of every
// build; `go mod tidy` still records its dependencies.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
