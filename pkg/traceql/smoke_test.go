package traceql

import "testing"

func TestSmoke(t *testing.T) {
	for _, s := range []string{`{}`, `{ .a = 1 && span.b =~ "x.*" }`, `{ status = error } >> { kind = server } | count() > 1`, `{ resource.service.name = "a" } | by(span.x) | select(name, .y)`, `{ duration > 1.5s || -1 < .a * 2 ^ 3 ^ 2 }`, `{ span."a b" != nil }`, `{.a} && {.b} | coalesce()`, `({.a} | count() > 1) && {.b}`, `{ trace:id = "abc" }`} {
		q, err := Parse(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		t.Logf("%s => %s  conds=%v", s, q.String(), q.Conditions())
		q2, err := Parse(q.String())
		if err != nil || q2.String() != q.String() {
			t.Fatalf("reparse %s: %v %s", q.String(), err, q2)
		}
	}
	for _, s := range []string{`{ .a = }`, `{ name = 1 }`, `{} | rate()`, "{ .a = 1 }\n  && { x }", `{ .a =~ "(" }`} {
		_, err := Parse(s)
		t.Logf("%s => %v", s, err)
	}
}
