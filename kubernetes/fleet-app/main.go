// Command fleet-app is the tenant app image for the Kubernetes tier: a static
// HTTP server that answers every path with 200 and says which service and
// tenant it is, so tests can tell routes and rollouts apart.
//
// Environment: PORT (default 8080), SERVICE, TENANT, and HEALTH_PATH (default
// /health; the readiness probe's path). GET /_/alloc?mb=N allocates and holds
// N MiB, so a test can show that a pod's memory limit is enforced (OOMKilled).
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync"
)

var (
	held   [][]byte
	heldMu sync.Mutex
)

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func main() {
	port := env("PORT", "8080")
	healthPath := env("HEALTH_PATH", "/health")
	hostname, _ := os.Hostname()
	identity := map[string]string{
		"service":  os.Getenv("SERVICE"),
		"tenant":   os.Getenv("TENANT"),
		"hostname": hostname,
		"version":  env("APP_VERSION", ""),
	}
	handler := http.HandlerFunc(func(writer http.ResponseWriter, request *http.Request) {
		if request.URL.Path == "/_/alloc" {
			megabytes, err := strconv.Atoi(request.URL.Query().Get("mb"))
			if err != nil || megabytes <= 0 {
				http.Error(writer, "mb must be a positive integer", http.StatusBadRequest)
				return
			}
			block := make([]byte, megabytes<<20)
			for i := range block {
				block[i] = 1 // touch every page so it is resident, not just reserved
			}
			heldMu.Lock()
			held = append(held, block)
			heldMu.Unlock()
		}
		body := map[string]string{"path": request.URL.Path, "health": strconv.FormatBool(request.URL.Path == healthPath)}
		for key, value := range identity {
			body[key] = value
		}
		writer.Header().Set("Content-Type", "application/json")
		writer.Header().Set("X-Fleet-Service", identity["service"])
		writer.Header().Set("X-Fleet-Tenant", identity["tenant"])
		_ = json.NewEncoder(writer).Encode(body)
	})
	log.Printf("fleet-app %s/%s listening on :%s (health %s)", identity["tenant"], identity["service"], port, healthPath)
	log.Fatal(http.ListenAndServe(":"+port, handler))
}
