module tenant-fleet/kubernetes/fleet-app

go 1.24
