package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/grpcutil"
	"github.com/grafana/dskit/instrument"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serverKit instruments and guards every server of the process, with the
// metrics dskit's server exports (prefixed rubato_):
//
//	rubato_request_duration_seconds{method, route, status_code, ws}
//	rubato_inflight_requests{method, route}
//	rubato_panics_total
//
// HTTP: method is the request's (unknown methods are "other"), route the
// ServeMux pattern that matched, as dskit labels a gorilla route template
// ("GET /api/traces/{traceID}" is api_traces_traceid; no match is
// "other"), status_code the status sent. gRPC: method is "gRPC", route the
// full method name, status_code success, cancel or error (or the code's
// name with report_grpc_codes_in_instrumentation_label_enabled). Labels
// never carry a raw path: their number is bounded by the registered
// routes and methods.
//
// A handler panic is answered (500, codes.Internal), logged with its stack
// and counted, and the server keeps serving. A panic in a goroutine the
// handler started is not a handler panic and still ends the process.
type serverKit struct {
	duration         *prometheus.HistogramVec
	inflight         *prometheus.GaugeVec
	panics           prometheus.Counter
	reportGRPCStatus bool
	logger           log.Logger

	routes sync.Map // ServeMux pattern → route label
}

func newServerKit(reportGRPCStatus bool, logger log.Logger, reg prometheus.Registerer) *serverKit {
	k := &serverKit{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rubato_request_duration_seconds",
			Help:    "Time (in seconds) spent serving HTTP and gRPC requests.",
			Buckets: instrument.DefBuckets,
		}, []string{"method", "route", "status_code", "ws"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rubato_inflight_requests",
			Help: "Current number of inflight requests.",
		}, []string{"method", "route"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_panics_total",
			Help: "Panics of HTTP and gRPC handlers, recovered and answered with an internal error.",
		}),
		reportGRPCStatus: reportGRPCStatus,
		logger:           logger,
	}
	reg.MustRegister(k.duration, k.inflight, k.panics)
	return k
}

// panicked logs and counts a recovered panic.
func (k *serverKit) panicked(p any, kv ...any) {
	k.panics.Inc()
	level.Error(k.logger).Log(append(append([]any{"msg", "panic while serving a request; recovered, the server keeps serving"}, kv...),
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))...)
}

// --- HTTP ---

// wrapMux instruments mux and recovers its handlers' panics.
func (k *serverKit) wrapMux(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The pattern is known only by matching; matching twice (here
		// and in ServeHTTP) costs far less than a label per raw path.
		_, pattern := mux.Handler(r)
		method, route := httpMethod(r.Method), k.routeLabel(pattern)
		inflight := k.inflight.WithLabelValues(method, route)
		inflight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			inflight.Dec()
			k.duration.WithLabelValues(method, route, strconv.Itoa(sw.statusCode()), strconv.FormatBool(isWebSocket(r))).
				Observe(time.Since(start).Seconds())
		}()
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler { //nolint:errorlint // net/http's own sentinel, compared as it does
				panic(p) // a deliberate abort, not a fault
			}
			k.panicked(p, "method", r.Method, "route", route, "path", r.URL.Path)
			if sw.status != 0 {
				// Part of the answer is out: abort the connection
				// (stream) so the client cannot take it for whole.
				sw.aborted = true
				panic(http.ErrAbortHandler)
			}
			http.Error(sw, "internal server error: the handler panicked (logged)", http.StatusInternalServerError)
		}()
		mux.ServeHTTP(sw, r)
	})
}

// routeLabel is the route label of a ServeMux pattern, made as dskit's
// MakeLabelValue makes one of a route template: the path, non-alphanumeric
// runs as "_", trimmed, lower case ("/" is "root"); no pattern is "other".
func (k *serverKit) routeLabel(pattern string) string {
	if pattern == "" {
		return "other"
	}
	if v, ok := k.routes.Load(pattern); ok {
		return v.(string)
	}
	path := pattern
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		path = pattern[i:] // drop "METHOD " and a host
	}
	var b strings.Builder
	sep := false
	for _, c := range strings.ToLower(path) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			if sep && b.Len() > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(c)
			sep = false
			continue
		}
		sep = true
	}
	label := b.String()
	if label == "" {
		label = "root"
	}
	k.routes.Store(pattern, label)
	return label
}

// httpMethod bounds the method label to the standard methods.
func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}

// isWebSocket reports a WebSocket handshake (dskit's ws label).
func isWebSocket(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, part := range strings.Split(r.Header.Get("Connection"), ",") {
		if strings.EqualFold(strings.TrimSpace(part), "upgrade") {
			return true
		}
	}
	return false
}

// statusWriter records the status sent. It keeps Flush (streamed answers)
// and, through Unwrap, whatever http.ResponseController finds beneath.
type statusWriter struct {
	http.ResponseWriter
	status  int
	aborted bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush() //nolint:errcheck // as http.Flusher: nothing to report to
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusCode is the status the client got: 200 when the handler wrote
// nothing, 500 when a panic cut a started answer.
func (w *statusWriter) statusCode() int {
	switch {
	case w.aborted:
		return http.StatusInternalServerError
	case w.status == 0:
		return http.StatusOK
	}
	return w.status
}

// --- gRPC ---

const grpcMethodLabel = "gRPC" // dskit's method label of gRPC requests

func (k *serverKit) unaryInstrument(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	inflight := k.inflight.WithLabelValues(grpcMethodLabel, info.FullMethod)
	inflight.Inc()
	defer inflight.Dec()
	start := time.Now()
	resp, err := handler(ctx, req)
	k.observeGRPC(info.FullMethod, err, time.Since(start))
	return resp, err
}

func (k *serverKit) streamInstrument(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	inflight := k.inflight.WithLabelValues(grpcMethodLabel, info.FullMethod)
	inflight.Inc()
	defer inflight.Dec()
	start := time.Now()
	err := handler(srv, ss)
	k.observeGRPC(info.FullMethod, err, time.Since(start))
	return err
}

func (k *serverKit) observeGRPC(method string, err error, d time.Duration) {
	k.duration.WithLabelValues(grpcMethodLabel, method, k.grpcStatusLabel(err), "false").Observe(d.Seconds())
}

// grpcStatusLabel is dskit's status_code of a gRPC request.
func (k *serverKit) grpcStatusLabel(err error) string {
	code := grpcutil.ErrorToStatusCode(err)
	if errors.Is(err, context.Canceled) {
		code = codes.Canceled
	}
	switch {
	case k.reportGRPCStatus:
		return code.String()
	case code == codes.OK:
		return "success"
	case code == codes.Canceled:
		return "cancel"
	}
	return "error"
}

func (k *serverKit) unaryRecover(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			k.panicked(p, "grpc_method", info.FullMethod)
			resp, err = nil, panicStatus(info.FullMethod)
		}
	}()
	return handler(ctx, req)
}

func (k *serverKit) streamRecover(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			k.panicked(p, "grpc_method", info.FullMethod)
			err = panicStatus(info.FullMethod)
		}
	}()
	return handler(srv, ss)
}

func panicStatus(method string) error {
	return status.Errorf(codes.Internal, "internal error: %s panicked (logged)", method)
}
