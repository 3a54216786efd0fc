package traceql

import (
	"errors"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseGolden(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{}`, `{ true }`},
		{`{ }`, `{ true }`},
		{`{ true }`, `{ true }`},
		{`{ false }`, `{ false }`},
		{`{.a=1}`, `{ .a = 1 }`},
		{`{ span.http.status_code >= 200 && span.http.status_code < 300 }`, `{ (span.http.status_code >= 200) && (span.http.status_code < 300) }`},
		{`{ resource.service.name = "frontend" && name = "POST /api/orders" }`, `{ (resource.service.name = "frontend") && (name = "POST /api/orders") }`},
		{"{ .a = `raw\\n` }", `{ .a = "raw\\n" }`},
		{`{ .a = "tab\there" }`, `{ .a = "tab\there" }`},
		{`{ .a = "é" }`, `{ .a = "é" }`},
		// && and || share one precedence level, left associative
		{`{ .a || .b && .c }`, `{ (.a || .b) && .c }`},
		{`{ .a && .b || .c }`, `{ (.a && .b) || .c }`},
		{`{ .a || (.b && .c) }`, `{ .a || (.b && .c) }`},
		{`{ .a = 1 || .b = 2 && .c = 3 }`, `{ ((.a = 1) || (.b = 2)) && (.c = 3) }`},
		// arithmetic precedence
		{`{ .a + .b * .c > 1 }`, `{ (.a + (.b * .c)) > 1 }`},
		{`{ .a - .b - .c > 1 }`, `{ ((.a - .b) - .c) > 1 }`},
		{`{ .a ^ .b ^ .c > 1 }`, `{ (.a ^ (.b ^ .c)) > 1 }`},
		{`{ -.a > 1 }`, `{ (-.a) > 1 }`},
		{`{ -.a * 2 > 1 }`, `{ (-(.a * 2)) > 1 }`},
		{`{ (-.a) * 2 > 1 }`, `{ ((-.a) * 2) > 1 }`},
		{`{ -2 ^ 2 = .a }`, `{ (-(2 ^ 2)) = .a }`},
		{`{ -2 * .a = .b }`, `{ (-(2 * .a)) = .b }`},
		{`{ -2 + .a = .b }`, `{ ((-2) + .a) = .b }`},
		{`{ !.a = true }`, `{ (!.a) = true }`},
		{`{ !(.a = 1) }`, `{ !(.a = 1) }`},
		{`{ .a = -1 }`, `{ .a = -1 }`},
		{`{ .a > -1.5 }`, `{ .a > -1.5 }`},
		{`{ .a > -5s }`, `{ .a > -5s }`},
		{`{ .a = minInt || .b = maxInt }`, `{ (.a = minInt) || (.b = 9223372036854775807) }`},
		{`{ .a = -9223372036854775808 }`, `{ .a = minInt }`},
		// literals
		{`{ .a = 1.0 }`, `{ .a = 1.0 }`},
		{`{ .a = 1e3 }`, `{ .a = 1000.0 }`},
		{`{ .a = 2.5e-3 }`, `{ .a = 0.0025 }`},
		{`{ duration > 1h30m }`, `{ duration > 1h30m0s }`},
		{`{ duration > 100ms }`, `{ duration > 100ms }`},
		{`{ duration > 1.5s }`, `{ duration > 1.5s }`},
		{`{ duration > 10us && duration < 5µs }`, `{ (duration > 10µs) && (duration < 5µs) }`},
		{`{ duration > 3ns }`, `{ duration > 3ns }`},
		{`{ duration > 2m }`, `{ duration > 2m0s }`},
		{`{ .a = true && .b = false && .c = nil }`, `{ ((.a = true) && (.b = false)) && (.c = nil) }`},
		{`{ status = ok || status = error || status = unset }`, `{ ((status = ok) || (status = error)) || (status = unset) }`},
		{`{ kind = unspecified || kind = internal || kind = server || kind = client || kind = producer || kind = consumer }`,
			`{ (((((kind = unspecified) || (kind = internal)) || (kind = server)) || (kind = client)) || (kind = producer)) || (kind = consumer) }`},
		// nil
		{`{ .a != nil }`, `{ .a != nil }`},
		{`{ nil != .a }`, `{ .a != nil }`},
		{`{ .a = nil }`, `{ .a = nil }`},
		{`{ nil = nil }`, `{ false }`},
		// intrinsics and spellings
		{`{ span:name = "x" && span:status = ok && span:kind = server && span:duration > 1s && span:statusMessage = "m" }`,
			`{ ((((name = "x") && (status = ok)) && (kind = server)) && (duration > 1s)) && (statusMessage = "m") }`},
		{`{ trace:rootName = "a" && trace:rootService = "b" && trace:duration > 1s }`, `{ ((rootName = "a") && (rootServiceName = "b")) && (traceDuration > 1s) }`},
		{`{ rootService = "b" }`, `{ rootServiceName = "b" }`},
		{`{ trace:id = "abc" && span:id = "01" && span:parentID = "02" }`, `{ ((trace:id = "abc") && (span:id = "01")) && (span:parentID = "02") }`},
		{`{ span:childCount > 1 }`, `{ childCount > 1 }`},
		{`{ event:name = "e" && event:timeSinceStart > 1ms }`, `{ (event:name = "e") && (event:timeSinceStart > 1ms) }`},
		{`{ link:traceID = "a" || link:spanID = "b" }`, `{ (link:traceID = "a") || (link:spanID = "b") }`},
		{`{ instrumentation:name = "a" && instrumentation:version = "b" }`, `{ (instrumentation:name = "a") && (instrumentation:version = "b") }`},
		// attributes
		{`{ span.foo = 1 && resource.foo = 1 && event.foo = 1 && link.foo = 1 && instrumentation.foo = 1 && .foo = 1 }`,
			`{ (((((span.foo = 1) && (resource.foo = 1)) && (event.foo = 1)) && (link.foo = 1)) && (instrumentation.foo = 1)) && (.foo = 1) }`},
		{`{ span."attribute name with space" = "value" }`, `{ span."attribute name with space" = "value" }`},
		{`{ span.attribute."name with space" = 1 }`, `{ span."attribute.name with space" = 1 }`},
		{`{ ."a\"b\\c" = 1 }`, `{ ."a\"b\\c" = 1 }`},
		{`{ .http.status_code-1 = 1 }`, `{ .http.status_code-1 = 1 }`},
		{`{ .a/b:c = 1 }`, `{ .a/b:c = 1 }`},
		{`{ .名前 = 1 }`, `{ .名前 = 1 }`},
		{`{ .a }`, `{ .a }`},
		{`{ .a && .b }`, `{ .a && .b }`},
		// regex
		{`{ .a =~ "x.*" && .b !~ "y|z" }`, `{ (.a =~ "x.*") && (.b !~ "y|z") }`},
		// spanset operators
		{`{ .a } && { .b }`, `{ .a } && { .b }`},
		{`{ .a } || { .b } && { .c }`, `({ .a } || { .b }) && { .c }`},
		{`{ .a } && { .b } > { .c }`, `{ .a } && ({ .b } > { .c })`},
		{`{ .a } > { .b } > { .c }`, `({ .a } > { .b }) > { .c }`},
		{`{ .a } > ({ .b } > { .c })`, `{ .a } > ({ .b } > { .c })`},
		{`{ .a } >> { .b }`, `{ .a } >> { .b }`},
		{`{ .a } < { .b }`, `{ .a } < { .b }`},
		{`{ .a } << { .b }`, `{ .a } << { .b }`},
		{`{ .a } ~ { .b }`, `{ .a } ~ { .b }`},
		{`{ .a } !> { .b }`, `{ .a } !> { .b }`},
		{`{ .a } !>> { .b }`, `{ .a } !>> { .b }`},
		{`{ .a } !< { .b }`, `{ .a } !< { .b }`},
		{`{ .a } !<< { .b }`, `{ .a } !<< { .b }`},
		{`{ .a } !~ { .b }`, `{ .a } !~ { .b }`},
		{`{ .a } &> { .b }`, `{ .a } &> { .b }`},
		{`{ .a } &>> { .b }`, `{ .a } &>> { .b }`},
		{`{ .a } &< { .b }`, `{ .a } &< { .b }`},
		{`{ .a } &<< { .b }`, `{ .a } &<< { .b }`},
		{`{ .a } &~ { .b }`, `{ .a } &~ { .b }`},
		{`(({ .a }))`, `{ .a }`},
		// pipelines
		{`{ } | count() > 1`, `{ true } | count() > 1`},
		{`{ } | count() >= -1`, `{ true } | count() >= -1`},
		{`{ } | avg(duration) > 20ms`, `{ true } | avg(duration) > 20ms`},
		{`{ } | min(span.a) = 1.5 | max(span:duration) != 1s | sum(.b * 2) <= 4`, `{ true } | min(span.a) = 1.5 | max(duration) != 1s | sum(.b * 2) <= 4`},
		{`count() > 10`, `count() > 10`},
		{`{ status = error } | by(resource.service.name) | count() > 1`, `{ status = error } | by(resource.service.name) | count() > 1`},
		{`{ } | select(span.a, resource.b, name, status)`, `{ true } | select(span.a, resource.b, name, status)`},
		{`{ } | by(.a) | coalesce()`, `{ true } | by(.a) | coalesce()`},
		{`{ .a } | { .b } && { .c }`, `{ .a } | { .b } && { .c }`},
		{`({ .a } | count() > 1) && { .b }`, `({ .a } | count() > 1) && { .b }`},
		{`({ .a } | by(.x)) > { .b }`, `({ .a } | by(.x)) > { .b }`},
		{"{\n  .a = 1 &&\n  .b = 2\n}", `{ (.a = 1) && (.b = 2) }`},

		// syntax errors, with positions
		{``, `1:1: expected a spanset filter`},
		{`{`, `1:2: expected a field or value, found end of query`},
		{`{ .a = 1`, `1:9: expected "}", found end of query`},
		{`{ .a = }`, `1:8: expected a field or value, found "}"`},
		{`{ .a = 1 } }`, `1:12: unexpected "}"`},
		{`{ .a == 1 }`, `1:7: expected a field or value, found "="`},
		{"{ .a = 1 }\n&& { x }", `2:6: unknown identifier "x"`},
		{`{ foo = 1 }`, `1:3: unknown identifier "foo"`},
		{`{ span. = 1 }`, `1:3: attribute name expected`},
		{`{ . = 1 }`, `1:3: attribute name expected`},
		{`{ span."open = 1 }`, `1:8: unterminated quoted attribute name`},
		{`{ .a = "open }`, `1:8: unterminated string literal`},
		{`{ .a = "bad\q" }`, `1:8: invalid string literal`},
		{`{ .a = 1x }`, `1:8: invalid number "1x"`},
		{`{ .a = 1.5.5 }`, `1:8: invalid number`},
		{`{ .a = 5 kb }`, `1:10: expected "}", found identifier "kb"`},
		{`{ .a = 3mx }`, `1:8: invalid duration`},
		{`{ .a = 99999999999999999999 }`, `1:8: integer out of range`},
		{`{ .a = 9223372036854775808 }`, `1:8: integer out of range`},
		{`{ .a = 1e999 }`, `1:8: float out of range`},
		{`{ .a = 99999999999h }`, `1:8: duration out of range`},
		{`{ .a = 1 } & { .b }`, `1:12: unexpected character '&'`},
		{`{ .a = 1 } $`, `1:12: unexpected character '$'`},
		{`{ span:nope = 1 }`, `1:3: unknown intrinsic "span:nope"`},
		{`{ trace:status = error }`, `1:3: unknown intrinsic "trace:status"`},
		{`{ foo:bar = 1 }`, `1:3: unknown intrinsic "foo:bar"`},
		{`{ name = 1 }`, `1:8: binary operations must operate on the same type`},
		{`{ status = "error" }`, `1:10: binary operations must operate on the same type`},
		{`{ duration > "1s" }`, `1:12: binary operations must operate on the same type`},
		{`{ status > ok }`, `1:10: illegal operation for the given types`},
		{`{ kind =~ "x" }`, `1:8: binary operations must operate on the same type`},
		{`{ .a = true && 1 }`, `1:13: binary operations must operate on the same type`},
		{`{ name }`, `1:3: a spanset filter must be a boolean expression`},
		{`{ 1 }`, `1:3: a spanset filter must be a boolean expression`},
		{`{ .a + 1 = "x" }`, `1:10: binary operations must operate on the same type`},
		{`{ !name }`, `1:3: ! needs a boolean operand`},
		{`{ -name = 1 }`, `1:3: unary - needs a numeric operand`},
		{`{ .a =~ "(" }`, `1:9: invalid regular expression`},
		{`{ .a } | count()`, `1:17: count() must be compared`},
		{`{ .a } | count() > "x"`, `1:20: an aggregate must be compared with a number or duration`},
		{`{ .a } | avg(name) > 1`, `1:14: avg() needs a numeric field`},
		{`{ .a } | by()`, `1:13: expected a field or value`},
		{`{ .a } | by(.a, .b)`, `1:10: by() takes exactly one field`},
		{`{ .a } | select(1)`, `1:17: expected a field, found literal 1`},
		{`{ .a } | select(.a + 1)`, `1:20: select() takes attributes and intrinsics`},
		{`{ .a } | frobnicate()`, `1:10: unknown function or keyword "frobnicate"`},
		{`{ .a } | `, `1:10: expected a spanset filter`},
		{`{ .a } >`, `1:9: expected a spanset filter`},
		{`({ .a }`, `1:8: expected ")"`},

		// unsupported features
		{`{ } | rate()`, `unsupported: metrics function rate()`},
		{`{ } | count_over_time() by (resource.service.name)`, `unsupported: metrics function count_over_time()`},
		{`{ } | quantile_over_time(duration, .5)`, `unsupported: metrics function quantile_over_time()`},
		{`{ } | histogram_over_time(duration)`, `unsupported: metrics function histogram_over_time()`},
		{`{ } | compare({ status = error })`, `unsupported: metrics function compare()`},
		{`{ } with (most_recent=true)`, `unsupported: query hints with(...)`},
		{`{ parent.foo = 1 }`, `unsupported: parent. attribute scope`},
		{`{ parent = nil }`, `unsupported: intrinsic parent`},
		{`{ nestedSetLeft > 1 }`, `unsupported: intrinsic nestedSetLeft`},
		{`{ span:start > 1 }`, `unsupported: intrinsic span:start`},
		{`{ .a =~ .b }`, `unsupported: regular expression that is not a string literal`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			q, err := Parse(tc.in)
			var pe *ParseError
			var ue *UnsupportedError
			switch {
			case strings.HasPrefix(tc.want, "unsupported: "):
				require.True(t, errors.As(err, &ue), "want UnsupportedError, got %v", err)
				require.Equal(t, strings.TrimPrefix(tc.want, "unsupported: "), ue.Feature)
			case len(tc.want) > 0 && tc.want[0] >= '0' && tc.want[0] <= '9':
				require.True(t, errors.As(err, &pe), "want ParseError, got %v (%v)", err, q)
				pos := strings.SplitN(tc.want, ": ", 2)
				require.Equal(t, pos[0], itoa(pe.Line)+":"+itoa(pe.Col), "error %v", pe)
				require.Contains(t, pe.Msg, pos[1])
				require.Equal(t, pe.Pos, offsetOf(tc.in, pe.Line, pe.Col))
				require.Contains(t, pe.Error(), "parse error at line "+itoa(pe.Line)+", col "+itoa(pe.Col)+": ")
			default:
				require.NoError(t, err)
				require.Equal(t, tc.want, q.String())
				q2, err := Parse(q.String())
				require.NoError(t, err)
				require.Equal(t, q.String(), q2.String())
			}
		})
	}
}

func itoa(n int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + func() string { return string([]byte(fmtInt(n))) }())
}

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func offsetOf(s string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		off += strings.IndexByte(s[off:], '\n') + 1
	}
	return off + col - 1
}

func TestIsMatchAll(t *testing.T) {
	for q, want := range map[string]bool{
		`{}`: true, `{ }`: true, `{ true }`: true, `({ })`: true,
		`{ false }`: false, `{} | count() > 0`: false, `{} && {}`: false, `{ .a }`: false, `{} | select(.a)`: false,
	} {
		p, err := Parse(q)
		require.NoError(t, err)
		require.Equal(t, want, p.IsMatchAll(), q)
	}
}

func TestIntrinsicsParse(t *testing.T) {
	require.Len(t, Intrinsics(), 25)
	require.True(t, sort.StringsAreSorted(Intrinsics()))
	for _, name := range Intrinsics() {
		_, err := Parse("{ " + name + " != nil }")
		require.NoError(t, err, name)
	}
}

// FuzzParse: Parse never panics, and a parsed query's String() parses to an
// equal query.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `{ .a = 1 && span.b =~ "x" }`, `{ status = error } >> { kind = server } | count() > 1`,
		`{ } | by(resource.service.name) | select(name, .y) | coalesce()`, `{ duration > 1.5s || -1 < .a * 2 ^ 3 }`,
		`{ span."a b" != nil }`, `({.a} | count() > 1) &>> {.b}`, "{ .a = `x` }", `{ .a = -9223372036854775808 }`,
		`{ trace:id = "abc" && event:name = "e" && link.x = 1 }`, `{ !(.a = nil) }`, `{ .a = 1µs }`,
	} {
		f.Add(s)
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 50; i++ {
		f.Add(randomQueryForFuzz(r))
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			var pe *ParseError
			var ue *UnsupportedError
			if !errors.As(err, &pe) && !errors.As(err, &ue) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			if pe != nil && (pe.Pos < 0 || pe.Pos > len(s) || pe.Line < 1 || pe.Col < 1) {
				t.Fatalf("bad position %+v for %q", pe, s)
			}
			return
		}
		q2, err := Parse(q.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", q.String(), s, err)
		}
		if q2.String() != q.String() {
			t.Fatalf("String() not stable: %q -> %q", q.String(), q2.String())
		}
		_ = q.Conditions()
		if _, err := q.Eval(testTrace()); err != nil && !errors.Is(err, ErrSpansetOperationMultiple) {
			t.Fatalf("Eval: %v", err)
		}
	})
}
