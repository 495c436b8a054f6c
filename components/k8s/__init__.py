"""The Kubernetes runtime of a tenant's app (fleet:kubernetes_hosts): one module per concern, composed by `app.KubernetesApp`."""
