package distributor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/model/otlpwire"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// Reasons a span is discarded, the values of rubato_discarded_spans_total's
// reason label.
const (
	ReasonRateLimited = "rate_limited"
	// ReasonRequestTooLarge: the request is larger than the tenant's
	// burst_size_bytes, so it could never pass the rate limiter.
	ReasonRequestTooLarge = "request_too_large"
	ReasonTraceTooLarge   = "trace_too_large"
	ReasonLiveTraces      = "live_traces_exceeded"
	ReasonInvalidTraceID  = "invalid_trace_id"
	ReasonIngesterFailed  = "ingester_unavailable"
	// ReasonInflightBytes: the distributor held max_inflight_push_bytes
	// of requests already.
	ReasonInflightBytes   = "inflight_bytes_limit"
	ReasonUnknownRejected = "unknown_error"
)

// Distributor checks limits, splits requests by trace ID and pushes each
// trace to its ingesters. It implements receiver.Consumer.
type Distributor struct {
	services.Service

	cfg       Config
	ring      ring.ReadRing
	pool      *client.Pool
	overrides *overrides.Overrides
	logger    log.Logger

	inflight atomic.Int64 // bytes of requests received and not yet answered

	limitersMu sync.Mutex
	limiters   map[string]*rate.Limiter

	receivedSpans  *prometheus.CounterVec
	receivedBytes  *prometheus.CounterVec
	discardedSpans *prometheus.CounterVec
	pushDuration   prometheus.Histogram
	// appends and appendFailures count pushes to each ingester (by ring
	// address) and those that failed, quorum reached or not, as Tempo's
	// tempo_distributor_ingester_append{s,_failures}_total do.
	appends        *prometheus.CounterVec
	appendFailures *prometheus.CounterVec
	// heldFragments counts fragments sent with hold set, one per replica
	// holding it; promotions counts PromoteHeld calls, by result.
	heldFragments prometheus.Counter
	promotions    *prometheus.CounterVec
}

var (
	_ receiver.Consumer    = (*Distributor)(nil)
	_ receiver.RawConsumer = (*Distributor)(nil)
)

// New builds a distributor pushing to the ingesters of r through pool.
// The caller runs r and pool (they are shared with the querier of the same
// process).
func New(cfg Config, r ring.ReadRing, ov *overrides.Overrides, pool *client.Pool, logger log.Logger, reg prometheus.Registerer) (*Distributor, error) {
	if r == nil || pool == nil {
		return nil, errors.New("distributor: an ingester ring and a client pool are required")
	}
	if cfg.PushTimeout == 0 {
		cfg.PushTimeout = DefaultPushTimeout
	}
	d := &Distributor{
		cfg: cfg, ring: r, pool: pool, overrides: ov,
		logger:   log.With(logger, "component", "distributor"),
		limiters: map[string]*rate.Limiter{},
		receivedSpans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_distributor_spans_received_total", Help: "Spans received, per tenant."}, []string{"tenant"}),
		receivedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_distributor_bytes_received_total", Help: "Bytes of OTLP protobuf received, per tenant."}, []string{"tenant"}),
		discardedSpans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_discarded_spans_total", Help: "Spans refused, each counted once, by tenant and reason; the client was told."}, []string{"tenant", "reason"}),
		pushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rubato_distributor_push_duration_seconds", Help: "Time to push a request to a quorum of its ingesters (with build_on_one_replica, also to each trace's builder, or to a replica promoted in its place).", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_distributor_ingester_appends_total", Help: "Pushes to each ingester, by its ring address."}, []string{"ingester"}),
		appendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_distributor_ingester_append_failures_total", Help: "Pushes to each ingester that failed (error or push timeout), whether or not the write reached its quorum."}, []string{"ingester"}),
		heldFragments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_distributor_held_fragments_total", Help: "Fragments (one trace's spans of one request) sent to a replica with hold set: kept in its WAL, built by another replica (build_on_one_replica)."}),
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_distributor_promotions_total", Help: "PromoteHeld calls, by result (ok, failed): sent when the replica building a fragment failed its push, to make a replica holding it build it."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(d.receivedSpans, d.receivedBytes, d.discardedSpans, d.pushDuration, d.appends, d.appendFailures, d.heldFragments, d.promotions)
	}
	d.Service = services.NewIdleService(nil, nil)
	return d, nil
}

func (d *Distributor) limiter(tenantID string, lim *overrides.Limits) *rate.Limiter {
	d.limitersMu.Lock()
	defer d.limitersMu.Unlock()
	l := d.limiters[tenantID]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(lim.IngestionRateLimitBytes), lim.IngestionBurstSizeBytes)
		d.limiters[tenantID] = l
	} else if l.Limit() != rate.Limit(lim.IngestionRateLimitBytes) || l.Burst() != lim.IngestionBurstSizeBytes {
		l.SetLimit(rate.Limit(lim.IngestionRateLimitBytes))
		l.SetBurst(lim.IngestionBurstSizeBytes)
	}
	return l
}

func (d *Distributor) discard(tenantID, reason string, spans int) {
	if spans > 0 {
		d.discardedSpans.WithLabelValues(tenantID, reason).Add(float64(spans))
	}
}

// Consume implements receiver.Consumer for receivers that convert to OTLP
// structs (Zipkin, Jaeger, OTLP/JSON): the request is encoded once and takes
// the same path as an OTLP protobuf body.
func (d *Distributor) Consume(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, string, error) {
	body, err := proto.Marshal(req)
	if err != nil {
		return 0, "", status.Errorf(codes.InvalidArgument, "encode request: %v", err)
	}
	_, rejected, msg, err := d.ConsumeRaw(ctx, body)
	return rejected, msg, err
}

// ConsumeRaw implements receiver.RawConsumer: it validates and splits the
// encoded request by trace ID without decoding it (pkg/model/otlpwire) and
// answers only once every accepted span is in the WAL of a quorum of its
// ingesters.
func (d *Distributor) ConsumeRaw(ctx context.Context, body []byte) (int, int64, string, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return 0, 0, "", status.Error(codes.Unauthenticated, err.Error())
	}
	split, err := otlpwire.Split(body)
	if err != nil {
		return 0, 0, "", status.Error(codes.InvalidArgument, err.Error())
	}
	if limit := d.cfg.MaxInflightPushBytes; limit > 0 {
		size := int64(len(body))
		n := d.inflight.Add(size)
		defer d.inflight.Add(-size)
		if n > limit {
			d.discard(tenantID, ReasonInflightBytes, split.Total)
			if size > limit { // can never pass: permanent, as a request over the burst
				st := status.New(codes.FailedPrecondition, fmt.Sprintf(
					"REQUEST_TOO_LARGE: request of %d bytes exceeds the distributor's max_inflight_push_bytes (%d) and can never be accepted; %d spans refused, do not retry",
					size, limit, split.Total))
				if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: receiver.ReasonRequestTooLarge, Domain: receiver.ErrorDomain}); err == nil {
					st = withInfo
				}
				return split.Total, 0, "", st.Err()
			}
			return split.Total, 0, "", rateLimitedError(fmt.Sprintf(
				"distributor busy: %d bytes of requests in flight with this one, over max_inflight_push_bytes (%d); retry later", n, limit), time.Second)
		}
	}
	rejected, msg, err := d.consume(ctx, tenantID, len(body), split)
	return split.Total, rejected, msg, err
}

func (d *Distributor) consume(ctx context.Context, tenantID string, size int, split *otlpwire.Result) (int64, string, error) {
	if split.Total == 0 {
		return 0, "", nil
	}
	d.receivedSpans.WithLabelValues(tenantID).Add(float64(split.Total))
	d.receivedBytes.WithLabelValues(tenantID).Add(float64(size))

	lim := d.overrides.For(tenantID)
	if err := d.checkRate(tenantID, lim, size, split.Total, time.Now()); err != nil {
		reason := ReasonRateLimited
		if status.Code(err) != codes.ResourceExhausted {
			reason = ReasonRequestTooLarge
		}
		d.discard(tenantID, reason, split.Total)
		return 0, "", err
	}
	rejected := map[string]int{}
	if split.Invalid > 0 {
		rejected[ReasonInvalidTraceID] = split.Invalid
	}
	if len(split.Fragments) > 0 {
		reasons, err := d.push(ctx, tenantID, split)
		if err != nil {
			d.discard(tenantID, ReasonIngesterFailed, split.Total-split.Invalid)
			d.discard(tenantID, ReasonInvalidTraceID, split.Invalid)
			return 0, "", err
		}
		for i, r := range reasons {
			if r == rubatopb.PushErrorReason_NO_ERROR {
				continue
			}
			rejected[reasonLabel(r)] += int(split.Fragments[i].Spans)
		}
	}
	if len(rejected) == 0 {
		return 0, "", nil
	}
	var n int64
	msg := ""
	for reason, spans := range rejected {
		d.discard(tenantID, reason, spans)
		n += int64(spans)
		if msg != "" {
			msg += "; "
		}
		msg += fmt.Sprintf("%d spans refused: %s", spans, reasonText(reason, lim))
	}
	if n == int64(split.Total) && rejected[ReasonInvalidTraceID] == split.Total {
		return 0, "", status.Error(codes.InvalidArgument, msg)
	}
	return n, msg, nil
}

func reasonLabel(r rubatopb.PushErrorReason) string {
	switch r {
	case rubatopb.PushErrorReason_MAX_LIVE_TRACES:
		return ReasonLiveTraces
	case rubatopb.PushErrorReason_TRACE_TOO_LARGE:
		return ReasonTraceTooLarge
	}
	return ReasonUnknownRejected
}

func reasonText(reason string, lim *overrides.Limits) string {
	switch reason {
	case ReasonLiveTraces:
		return fmt.Sprintf("LIVE_TRACES_EXCEEDED: the tenant's live traces in an ingester reached max_live_traces_bytes (%d) or max_traces_per_user (%d; 0 = no cap)",
			lim.MaxLiveTracesBytes, lim.MaxTracesPerUser)
	case ReasonTraceTooLarge:
		return fmt.Sprintf("TRACE_TOO_LARGE: trace exceeds max_bytes_per_trace (%d)", lim.MaxBytesPerTrace)
	case ReasonInvalidTraceID:
		return "INVALID_TRACE_ID: trace_id must be 16 bytes and not all zero"
	}
	return "ingester refused the trace"
}

// push sends every fragment to its replicas and returns once each fragment
// is in the WAL of a quorum of them, with per-fragment reasons (a fragment
// is reported refused if a replica that answered by then refused it).
//
// With build_on_one_replica and a replication factor above 1, each
// fragment goes to its builder (the first replica ring.Get returns) to be
// built, and to the other replicas held, all under one random push ID;
// push then also waits for the builders and, where one failed, promotes
// the fragment on a replica that holds it (ensureBuilt).
//
// The pushes run on a context detached from the client's, bounded by
// PushTimeout: a replica slower than the quorum still receives the write
// after the client has its answer, so a trace normally lands on all its
// replicas, not just on a quorum.
func (d *Distributor) push(ctx context.Context, tenantID string, split *otlpwire.Result) ([]rubatopb.PushErrorReason, error) {
	start := time.Now()
	defer func() { d.pushDuration.Observe(time.Since(start).Seconds()) }()
	frags := split.Fragments
	keys := make([]uint32, len(frags))
	for i := range frags {
		keys[i] = client.TokenFor(tenantID, frags[i].ID[:])
	}
	reasons := make([]rubatopb.PushErrorReason, len(frags))
	var mu sync.Mutex
	pushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.PushTimeout)
	pushCtx = client.WithTenant(pushCtx, tenantID)
	var (
		batchRing ring.DoBatchRing = d.ring
		rec       *replicaRecorder // nil: every replica builds
		pushID    uint64
	)
	if d.cfg.BuildOnOneReplica && d.ring.ReplicationFactor() > 1 {
		rec = newReplicaRecorder(d.ring, len(keys))
		batchRing = rec
		pushID = newPushID()
	}
	err := ring.DoBatchWithOptions(ctx, ring.WriteNoExtend, batchRing, keys, func(inst ring.InstanceDesc, idx []int) (err error) {
		if rec != nil {
			defer func() { rec.finished(inst.Addr, err) }()
		}
		c, err := d.pool.Get(inst.Addr)
		if err != nil {
			d.appends.WithLabelValues(inst.Addr).Inc()
			d.appendFailures.WithLabelValues(inst.Addr).Inc()
			return err
		}
		req := &rubatopb.PushBytesRequest{
			Ids: make([][]byte, len(idx)), Traces: make([][]byte, len(idx)), Spans: make([]uint32, len(idx)),
			PushID: pushID,
		}
		held := 0
		for j, i := range idx {
			req.Ids[j] = frags[i].ID[:]
			req.Traces[j] = frags[i].Bytes
			req.Spans[j] = frags[i].Spans
			if rec != nil && inst.Addr != rec.builder(i) {
				if req.Hold == nil {
					req.Hold = make([]bool, len(idx))
				}
				req.Hold[j] = true
				held++
			}
		}
		if held > 0 {
			d.heldFragments.Add(float64(held))
		}
		d.appends.WithLabelValues(inst.Addr).Inc()
		resp, err := c.PushBytes(pushCtx, req)
		if err != nil {
			d.appendFailures.WithLabelValues(inst.Addr).Inc()
			return fmt.Errorf("ingester %s: %w", inst.Addr, err)
		}
		if len(resp.ErrorsByTrace) == len(idx) {
			mu.Lock()
			for j, i := range idx {
				if r := resp.ErrorsByTrace[j]; r != rubatopb.PushErrorReason_NO_ERROR {
					reasons[i] = r
				}
			}
			mu.Unlock()
		}
		return nil
	}, ring.DoBatchOptions{Cleanup: cancel, IsClientError: func(error) bool { return false }})
	if err != nil {
		level.Warn(d.logger).Log("msg", "push to ingesters failed", "tenant", tenantID, "err", err)
		if s, ok := status.FromError(err); ok && s.Code() == codes.InvalidArgument {
			return nil, err
		}
		if errors.Is(err, ring.ErrEmptyRing) || errors.Is(err, ring.ErrTooManyUnhealthyInstances) {
			return nil, status.Errorf(codes.Unavailable, "no quorum of ingesters available: %v", err)
		}
		return nil, status.Errorf(codes.Unavailable, "push to ingesters (no quorum): %v", err)
	}
	if rec != nil {
		refused := func(i int) bool {
			mu.Lock()
			defer mu.Unlock()
			return reasons[i] != rubatopb.PushErrorReason_NO_ERROR
		}
		if err := d.ensureBuilt(pushCtx, tenantID, rec, frags, pushID, refused, time.Since(start)); err != nil {
			return nil, err
		}
	}
	// Replicas slower than the quorum may still be answering: read the
	// reasons under the lock, as they write them.
	mu.Lock()
	out := append([]rubatopb.PushErrorReason(nil), reasons...)
	mu.Unlock()
	return out, nil
}
