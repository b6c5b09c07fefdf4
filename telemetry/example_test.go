package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"go.opentelemetry.io/otel/metric"

	"github.com/vibegrapher/vibegrapher/telemetry"
)

// A process builds one Telemetry, hands its providers to the packages that
// record (llm, sandbox, api/realtime), wraps its mux in Middleware and mounts
// /metrics and /debug/pprof/ on it.
func Example() {
	ctx := context.Background()
	tel, err := telemetry.New(ctx, telemetry.Config{Version: "dev", Role: "api"})
	if err != nil {
		panic(err)
	}
	defer tel.Shutdown(ctx)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /projects/{id}", func(w http.ResponseWriter, r *http.Request) {
		calls, _ := tel.Meter().Meter("example").Int64Counter("example.lookups", metric.WithUnit("{lookup}"))
		calls.Add(r.Context(), 1)
		fmt.Fprintln(w, "a project")
	})
	tel.Mount(mux.Handle)
	srv := httptest.NewServer(tel.Middleware(mux))
	defer srv.Close()

	for range 2 {
		res, _ := http.Get(srv.URL + "/projects/42")
		res.Body.Close()
	}
	res, _ := http.Get(srv.URL + "/metrics")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "example_lookups_total") ||
			(strings.HasPrefix(line, "http_server_request_duration_seconds_count") && strings.Contains(line, `http_route="/projects/{id}"`)) {
			fmt.Println(line[:strings.Index(line, "{")], line[strings.LastIndex(line, " ")+1:])
		}
	}
	// Output:
	// example_lookups_total 2
	// http_server_request_duration_seconds_count 2
}
