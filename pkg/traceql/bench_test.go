package traceql

import (
	"math/rand"
	"syscall"
	"testing"

	"github.com/rubatodb/rubato/pkg/traceql/traceqltest"
)

var benchQueries = []struct{ name, q string }{
	{"match-all", `{ }`},
	{"no-match-attr", `{ span.does.not.exist = "x" }`},
	{"no-match-intrinsic", `{ name = "nope" }`},
	{"selective", `{ resource.service.name = "cart" && span.http.status_code >= 500 }`},
	{"unscoped", `{ .http.method = "POST" }`},
	{"regex", `{ name =~ "GET.*" }`},
	{"or", `{ status = error || kind = server || duration > 1s }`},
	{"spanset-and", `{ status = error } && { kind = server }`},
	{"descendant", `{ kind = server } >> { status = error }`},
	{"sibling", `{ } ~ { kind = client }`},
	{"by-count", `{ } | by(resource.service.name) | count() > 2`},
	{"avg", `{ } | avg(duration) > 1ms`},
	{"trace-id", `{ trace:id = "abcd" }`},
}

// BenchmarkEval evaluates queries over a realistic 30-span trace with three
// services, events and links.
func BenchmarkEval(b *testing.B) {
	r := rand.New(rand.NewSource(11))
	td := traceqltest.Trace(r, traceqltest.TraceID(r), traceqltest.TraceOptions{MinSpans: 30, MaxSpans: 30})
	for _, bq := range benchQueries {
		q, err := Parse(bq.q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bq.name, func(b *testing.B) {
			b.ReportAllocs()
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := q.Eval(td); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time of the process per op: on a machine shared with other
			// work, wall time per op overstates the cost
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(`{ resource.service.name = "frontend" && name = "GET /api" && span.http.status_code = 500 && status = error && kind = server && duration > 100ms && duration < 2s }`); err != nil {
			b.Fatal(err)
		}
	}
}

func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
