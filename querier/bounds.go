package querier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/model/combine"
	"github.com/rubatodb/rubato/pkg/overrides"
)

// Bounds of a trace lookup. Three things are bounded:
//
//   - The answer: a tenant's max_bytes_per_trace (pkg/overrides) caps the
//     protobuf size of the trace a lookup returns. Parts of the trace are
//     admitted span by span as they are decoded (from an ingester answer,
//     or from each row of a block, block.Reader.FindTraceByIDFunc): a copy
//     of a span already admitted is dropped first, so replicas never count
//     twice, and once the next span would take the answer past the limit
//     the lookup stops admitting and every read stops at its next part. The
//     answer is then reported as partial with Tempo's message
//     (PartialError, ErrTraceTooLarge).
//   - One lookup's memory: what it admitted (at most the limit) plus, per
//     block read in flight (at most concurrent_block_reads, a semaphore
//     taken before each read's goroutine is started), one row group and
//     one decoded part, plus the ingesters' answers.
//   - The process: at most max_concurrent_queries lookups run at once, and
//     each holds its limit's bytes of max_trace_bytes_in_flight from before
//     it starts until its answer is written. A lookup that cannot get both
//     within queue_timeout is refused with ErrBusy (HTTP 429). A tenant
//     without a limit, or one above the budget, is cut at the budget.

// ErrBusy refuses a lookup that could not start within queue_timeout
// because max_concurrent_queries lookups were running or their bytes filled
// max_trace_bytes_in_flight. It is a 429 / ResourceExhausted: retry later.
var ErrBusy = errors.New("querier: too many trace lookups in flight")

// ErrTraceTooLarge is matched (errors.Is) by a PartialError whose trace was
// cut at max_bytes_per_trace.
var ErrTraceTooLarge = errors.New("trace exceeds max size")

// PartialError says why a found trace is incomplete: some sources could not
// be read, the trace was cut at MaxBytes, or both.
type PartialError struct {
	// Sources joins the errors of the sources that failed; nil if none did.
	Sources error
	// MaxBytes, when positive, is the limit the trace was cut at.
	MaxBytes int
}

func (e *PartialError) Error() string {
	var parts []string
	if e.MaxBytes > 0 {
		parts = append(parts, tooLargeMessage(e.MaxBytes))
	}
	if e.Sources != nil {
		parts = append(parts, "some sources could not be read: "+e.Sources.Error())
	}
	return strings.Join(parts, "; ")
}

// Unwrap returns the sources' errors.
func (e *PartialError) Unwrap() error { return e.Sources }

// Is matches ErrTraceTooLarge when the trace was cut.
func (e *PartialError) Is(target error) bool { return target == ErrTraceTooLarge && e.MaxBytes > 0 }

// tooLargeMessage is Tempo's message for a trace cut at max_bytes_per_trace
// (modules/frontend/combiner/trace_by_id_v2.go).
func tooLargeMessage(max int) string {
	return fmt.Sprintf("Trace exceeds maximum size of %d bytes, a partial trace is returned", max)
}

// Limits gives a tenant's limits; *overrides.Overrides is one.
type Limits interface {
	For(tenant string) *overrides.Limits
}

// gate bounds the lookups of one process (see above).
type gate struct {
	cfg   Config
	slots *semaphore.Weighted // nil: no max_concurrent_queries
	bytes *semaphore.Weighted // nil: no max_trace_bytes_in_flight
}

func newGate(cfg Config) *gate {
	g := &gate{cfg: cfg}
	if cfg.MaxConcurrentQueries > 0 {
		g.slots = semaphore.NewWeighted(int64(cfg.MaxConcurrentQueries))
	}
	if cfg.MaxTraceBytesInFlight > 0 {
		g.bytes = semaphore.NewWeighted(cfg.MaxTraceBytesInFlight)
	}
	return g
}

// answerLimit is the size a lookup's answer is cut at: the tenant's
// max_bytes_per_trace, at most the process budget; 0 means none.
func (g *gate) answerLimit(maxBytesPerTrace int) int {
	b := g.cfg.MaxTraceBytesInFlight
	if b > 0 && (maxBytesPerTrace <= 0 || int64(maxBytesPerTrace) > b) {
		return int(b)
	}
	return maxBytesPerTrace
}

// enter waits up to queue_timeout (0: not at all) for a slot and for
// limit bytes. It returns the function that gives them back, or ErrBusy
// (or ctx's error when the caller went away).
func (g *gate) enter(ctx context.Context, limit int, refused func(reason string)) (release func(), err error) {
	wctx, cancel := context.WithTimeout(ctx, g.cfg.QueueTimeout)
	defer cancel()
	acquire := func(s *semaphore.Weighted, n int64) error {
		if g.cfg.QueueTimeout <= 0 {
			if s.TryAcquire(n) {
				return nil
			}
			return ErrBusy
		}
		return s.Acquire(wctx, n)
	}
	busy := func(reason, what string) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		refused(reason)
		return fmt.Errorf("%w: %s within querier.queue_timeout (%s)", ErrBusy, what, g.cfg.QueueTimeout)
	}
	if g.slots != nil {
		if err := acquire(g.slots, 1); err != nil {
			return nil, busy("concurrency", fmt.Sprintf("no free slot of querier.max_concurrent_queries (%d)", g.cfg.MaxConcurrentQueries))
		}
	}
	n := int64(0)
	if g.bytes != nil {
		n = int64(limit)
		if err := acquire(g.bytes, n); err != nil {
			if g.slots != nil {
				g.slots.Release(1)
			}
			return nil, busy("memory", fmt.Sprintf("%d bytes of querier.max_trace_bytes_in_flight (%d) not free", n, g.cfg.MaxTraceBytesInFlight))
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if g.bytes != nil {
				g.bytes.Release(n)
			}
			if g.slots != nil {
				g.slots.Release(1)
			}
		})
	}, nil
}

// Admission decides which spans of a lookup's parts go into the answer
// (see above). Safe for concurrent use by the lookup's reads. A
// query-frontend admits its jobs' answers through one too.
type Admission struct {
	max int // 0: no limit

	mu   sync.Mutex
	seen combine.SpanSet
	used int
	full bool
}

// NewAdmission admits spans up to max bytes of protobuf (0: no limit).
func NewAdmission(max int) *Admission { return &Admission{max: max} }

// Max is the limit the answer is cut at (0: none).
func (a *Admission) Max() int { return a.max }

// Admit removes from td, which the caller hands over, the spans already
// admitted and, once the limit is reached, every span that does not fit;
// groups left without spans are removed too. It reports whether the
// lookup may go on reading (false once the answer is full).
func (a *Admission) Admit(td *tracev1.TracesData) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if td == nil {
		return !a.full
	}
	rss := td.ResourceSpans[:0]
	for _, rs := range td.ResourceSpans {
		if rs == nil {
			continue
		}
		rsCost := 0
		if a.max > 0 {
			rsCost = groupCost(&tracev1.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl})
		}
		sss := rs.ScopeSpans[:0]
		for _, ss := range rs.ScopeSpans {
			if ss == nil {
				continue
			}
			ssCost := 0
			if a.max > 0 {
				ssCost = groupCost(&tracev1.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl})
			}
			spans := ss.Spans[:0]
			for _, sp := range ss.Spans {
				if a.full || sp == nil {
					break
				}
				if !a.seen.Add(sp.SpanId, int32(sp.Kind)) {
					continue // a copy of a span admitted before
				}
				if a.max > 0 {
					// The headers are paid for by the first span kept
					// under them.
					cost := protowire.SizeBytes(proto.Size(sp)) + 1
					if len(spans) == 0 {
						cost += ssCost
						if len(sss) == 0 {
							cost += rsCost
						}
					}
					if a.used+cost > a.max {
						a.full = true
						break
					}
					a.used += cost
				}
				spans = append(spans, sp)
			}
			clear(ss.Spans[len(spans):])
			ss.Spans = spans
			if len(spans) > 0 {
				sss = append(sss, ss)
			}
		}
		clear(rs.ScopeSpans[len(sss):])
		rs.ScopeSpans = sss
		if len(sss) > 0 {
			rss = append(rss, rs)
		}
	}
	clear(td.ResourceSpans[len(rss):])
	td.ResourceSpans = rss
	return !a.full
}

// Full reports whether the answer is full: nothing more is admitted.
func (a *Admission) Full() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.full
}

// groupCost bounds what a ResourceSpans or ScopeSpans header (m holds only
// the header fields) adds to the answer: its fields, its field tag, and a
// length prefix of at most 5 bytes (groups under 32 GiB). Counting it for
// every part that keeps spans under it overcounts when parts are joined,
// so the sum of costs never falls below the answer's protobuf size.
func groupCost(m proto.Message) int { return proto.Size(m) + 1 + 5 }
