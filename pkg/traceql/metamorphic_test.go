package traceql

import (
	"math/rand"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/traceql/traceqltest"
)

// spanSet evaluates q and returns the set of matched spans (all spansets).
func spanSet(t *testing.T, q string, td *tracev1.TracesData) map[*tracev1.Span]bool {
	t.Helper()
	p, err := Parse(q)
	require.NoError(t, err, q)
	res, err := p.Eval(td)
	require.NoError(t, err, q)
	out := map[*tracev1.Span]bool{}
	for _, ss := range res {
		require.NotEmpty(t, ss.Spans, q)
		for _, s := range ss.Spans {
			out[s.Span] = true
		}
	}
	return out
}

type flat struct {
	spans  []*tracev1.Span
	parent map[*tracev1.Span]*tracev1.Span // connected spans only
	conn   map[*tracev1.Span]bool
}

func isRoot(s *tracev1.Span) bool { return len(s.ParentSpanId) == 0 }

// flatten computes the span tree independently of the engine, by Tempo's
// rules: roots lack a parent ID; a shared parent ID (client/server pair)
// resolves by kind; spans not reachable from a root are disconnected; with
// no root or more than two spans per ID everything is disconnected.
func flatten(td *tracev1.TracesData) flat {
	f := flat{parent: map[*tracev1.Span]*tracev1.Span{}, conn: map[*tracev1.Span]bool{}}
	byID := map[string][]*tracev1.Span{}
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				f.spans = append(f.spans, sp)
				byID[string(sp.SpanId)] = append(byID[string(sp.SpanId)], sp)
			}
		}
	}
	roots := 0
	for _, sp := range f.spans {
		if isRoot(sp) {
			roots++
		}
	}
	for _, l := range byID {
		if len(l) > 2 {
			return f
		}
	}
	if roots == 0 {
		return f
	}
	tp := map[*tracev1.Span]*tracev1.Span{}
	for _, sp := range f.spans {
		if isRoot(sp) {
			continue
		}
		cands := byID[string(sp.ParentSpanId)]
		switch len(cands) {
		case 1:
			tp[sp] = cands[0]
		case 2:
			want := tracev1.Span_SPAN_KIND_SERVER
			if sp.Kind == tracev1.Span_SPAN_KIND_SERVER {
				want = tracev1.Span_SPAN_KIND_CLIENT
			}
			for _, c := range cands {
				if c.Kind == want {
					tp[sp] = c
					break
				}
			}
		}
	}
	for _, sp := range f.spans {
		cur := sp
		for steps := 0; cur != nil && steps <= len(f.spans); steps++ {
			if isRoot(cur) {
				f.conn[sp] = true
				break
			}
			cur = tp[cur]
		}
	}
	for _, sp := range f.spans {
		if f.conn[sp] && !isRoot(sp) {
			f.parent[sp] = tp[sp]
		}
	}
	return f
}

func (f flat) ancestors(s *tracev1.Span) []*tracev1.Span {
	var out []*tracev1.Span
	for p := f.parent[s]; p != nil; p = f.parent[p] {
		out = append(out, p)
	}
	return out
}

// siblings: different connected spans with the same parent, or both roots.
func (f flat) siblings(a, b *tracev1.Span) bool {
	if a == b || !f.conn[a] || !f.conn[b] {
		return false
	}
	return f.parent[a] == f.parent[b]
}

func keys(m map[*tracev1.Span]bool) []string {
	var out []string
	for s := range m {
		out = append(out, string(s.SpanId)+s.Name)
	}
	sort.Strings(out)
	return out
}

// TestEvalMetamorphic checks the engine against relations that must hold
// between queries, with structural relations computed by brute force.
func TestEvalMetamorphic(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for i := 0; i < 300; i++ {
		td := traceqltest.Trace(r, traceqltest.TraceID(r), traceqltest.TraceOptions{MaxSpans: 25})
		f := flatten(td)
		a, b := traceqltest.Cond(r), traceqltest.Cond(r)
		A := spanSet(t, "{ "+a+" }", td)
		B := spanSet(t, "{ "+b+" }", td)
		inter, union := map[*tracev1.Span]bool{}, map[*tracev1.Span]bool{}
		for s := range A {
			union[s] = true
			if B[s] {
				inter[s] = true
			}
		}
		for s := range B {
			union[s] = true
		}
		msg := a + " / " + b
		require.Equal(t, keys(inter), keys(spanSet(t, "{ ("+a+") && ("+b+") }", td)), msg)
		require.Equal(t, keys(union), keys(spanSet(t, "{ ("+a+") || ("+b+") }", td)), msg)
		require.Equal(t, keys(union), keys(spanSet(t, "{ "+a+" } || { "+b+" }", td)), msg)
		both := map[*tracev1.Span]bool{}
		if len(A) > 0 && len(B) > 0 {
			both = union
		}
		require.Equal(t, keys(both), keys(spanSet(t, "{ "+a+" } && { "+b+" }", td)), msg)
		require.Equal(t, keys(inter), keys(spanSet(t, "{ "+a+" } | { "+b+" }", td)), msg)

		// negation is the complement, except for event and link conditions,
		// which are existential
		notA := spanSet(t, "{ !("+a+") }", td)
		for _, s := range f.spans {
			if !containsAny(a, "event", "link") {
				require.Equal(t, !A[s], notA[s], "!(%s) on %s", a, s.Name)
			}
		}

		// structural operators against brute force
		want := map[string]map[*tracev1.Span]bool{}
		for _, op := range []string{">", ">>", "<", "<<", "~", "!>", "!>>", "!<", "!<<", "!~", "&>", "&>>", "&<", "&<<", "&~"} {
			want[op] = map[*tracev1.Span]bool{}
		}
		for _, s := range f.spans {
			if !B[s] || !f.conn[s] {
				continue
			}
			child := A[f.parent[s]]
			desc := false
			for _, an := range f.ancestors(s) {
				if A[an] {
					desc = true
				}
			}
			parentOf, ancOf, sib := false, false, false
			for _, o := range f.spans {
				if !A[o] || !f.conn[o] {
					continue
				}
				if f.parent[o] == s {
					parentOf = true
				}
				for _, an := range f.ancestors(o) {
					if an == s {
						ancOf = true
					}
				}
				if f.siblings(o, s) {
					sib = true
				}
			}
			set := func(op string, v bool) {
				if v {
					want[op][s] = true
				}
			}
			set(">", child)
			set("!>", !child)
			set(">>", desc)
			set("!>>", !desc)
			set("<", parentOf)
			set("!<", !parentOf)
			set("<<", ancOf)
			set("!<<", !ancOf)
			set("~", sib)
			set("!~", !sib)
		}
		// union variants: the right side as above plus the left spans that
		// take part in a relation with a matched right span
		for _, op := range []string{"&>", "&>>", "&<", "&<<", "&~"} {
			base := op[1:]
			for s := range want[base] {
				want[op][s] = true
			}
			for _, l := range f.spans {
				if !A[l] || !f.conn[l] {
					continue
				}
				for rs := range want[base] {
					var rel bool
					switch base {
					case ">":
						rel = f.parent[rs] == l
					case ">>":
						for _, an := range f.ancestors(rs) {
							rel = rel || an == l
						}
					case "<":
						rel = f.parent[l] == rs
					case "<<":
						for _, an := range f.ancestors(l) {
							rel = rel || an == rs
						}
					case "~":
						rel = f.siblings(l, rs)
					}
					if rel {
						want[op][l] = true
					}
				}
			}
		}
		for op, w := range want {
			q := "{ " + a + " } " + op + " { " + b + " }"
			require.Equal(t, keys(w), keys(spanSet(t, q, td)), q)
		}

		// count() is the number of matched spans
		n := len(A)
		for _, c := range []int{n - 1, n, n + 1} {
			q, err := Parse("{ " + a + " } | count() = " + itoa(max(c, 0)))
			require.NoError(t, err)
			res, err := q.Eval(td)
			require.NoError(t, err)
			require.Equal(t, n > 0 && c == n, res != nil, "count of %s = %d", a, c)
		}
	}
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		for i := 0; i+len(x) <= len(s); i++ {
			if s[i:i+len(x)] == x {
				return true
			}
		}
	}
	return false
}

// TestEvalConcurrent: one Query evaluated from several goroutines gives the
// same answers as sequentially (run with -race).
func TestEvalConcurrent(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	var traces []*tracev1.TracesData
	for i := 0; i < 40; i++ {
		traces = append(traces, traceqltest.Trace(r, traceqltest.TraceID(r), traceqltest.TraceOptions{}))
	}
	for i := 0; i < 20; i++ {
		qs, _ := traceqltest.Query(r)
		q, err := Parse(qs)
		require.NoError(t, err)
		want := make([]string, len(traces))
		for j, td := range traces {
			res, _ := q.Eval(td)
			want[j] = names(res)
		}
		done := make(chan []string, 4)
		for g := 0; g < 4; g++ {
			go func() {
				got := make([]string, len(traces))
				for j := range traces {
					res, _ := q.Eval(traces[(j+g)%len(traces)])
					got[(j+g)%len(traces)] = names(res)
				}
				done <- got
			}()
		}
		for g := 0; g < 4; g++ {
			require.Equal(t, want, <-done, qs)
		}
	}
}
