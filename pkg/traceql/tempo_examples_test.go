package traceql

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Query lists modelled on Tempo's pkg/traceql/test_examples.yaml: what Tempo
// accepts must parse here or be reported as unsupported; what Tempo rejects
// must fail here too.
var tempoValid = []string{
	`{ true }`, `{ !true }`, `{ true && false }`, `{ true || false }`, `{ 1 = 2 }`, `{ 1 != 2 }`, `{ 1 > 2 }`,
	`{ 1 >= 2 }`, `{ 1 < 2 }`, `{ 1 <= 2 }`, `{ -1 = 2 }`, `{ "test" =~ "test" }`, `{ "test" !~ "test" }`,
	`{ "test" = "test" }`, `{ "test" != "test" }`, `{ .a }`, `{ !.a }`, `{ .a && false }`, `{ .a || true }`,
	`{ .a = 2 }`, `{ .a != 2 }`, `{ .a > 2 }`, `{ .a >= 2 }`, `{ .a < 2 }`, `{ .a <= 2 }`, `{ -.a = 2 }`,
	`{ .a =~ "test" }`, `{ .a !~ "test" }`, `{ .a = "test" }`, `{ .a != "test" }`, `{ resource.a != 3 }`,
	`{ span.a != 3 }`, `{ !("test" != .c || ((true && .b) || 3 < .a)) }`, `{ status = ok }`, `{ status = unset }`,
	`{ status = error }`, `{ status != error }`, `{ statusMessage = "status message" }`, `{ statusMessage = "" }`,
	`{ statusMessage =~ ".*" }`, `{ statusMessage != "" }`, `{ kind = internal }`, `{ kind = client }`,
	`{ kind = consumer }`, `{ traceDuration > 1s }`, `{ rootServiceName = "foo" }`, `{ rootName != "foo" }`,
	`{ duration > 1s }`, `{ 1 < 1h }`, `{ 1 <= 1.1 }`, `{ event.foo = "bar" }`, `{ link.foo = "bar" }`,
	`{ instrumentation.foo = "bar" }`, `{ trace:duration > 2s }`, `{ trace:rootName = "a" }`,
	`{ trace:rootService = "a" }`, `{ trace:id = "aasdf4ergf" }`, `{ span:duration > 2s }`, `{ span:status = error }`,
	`{ span:kind = client }`, `{ span:statusMessage = "status message" }`, `{ span:id = "61626364656667" }`,
	`{ event:name = "exception" }`, `{ event:timeSinceStart > 1s }`, `{ link:traceID = "f1f1f1f1f1f1ff1f1f1f1f1f1f1f1f1" }`,
	`{ link:spanID = "f1f1f1f1f1f1f1f1" }`, `{ instrumentation:name = "grpc" }`, `{ instrumentation:version = "v3.34" }`,
	`{ 1 + 1 = 2 }`, `{ 1 - 1 = 2 }`, `{ 1 * 1 = 2 }`, `{ 1 / 1 = 2 }`, `{ 1 ^ 1 = 2 }`, `{ .a + 1 = 2 }`,
	`{ .a - 1 = 2 }`, `{ .a * 1 = 2 }`, `{ .a / 1 = 2 }`, `{ .a ^ 1 = 2 }`, `{ duration > 1s * 2s }`,
	`{ 1 * 1h = 1 }`, `{ 1 / 1.1 = 1 }`, `{ .http.status >= "200" }`,
	`{ true } && { true }`, `{ true } || { true }`, `{ true } >> { true }`, `{ true } << { true }`, `{ true } > { true }`,
	`{ true } < { true }`, `{ true } ~ { true }`, `{ true } !> { true }`, `{ true } !< { true }`, `{ true } !~ { true }`,
	`{ true } !>> { true }`, `{ true } !<< { true }`, `{ true } &> { true }`, `{ true } &< { true }`, `{ true } &~ { true }`,
	`{ true } &>> { true }`, `{ true } &<< { true }`,
	`({ true } | count() > 1 | { false }) >> ({ true } | count() > 1 | { false })`,
	`({ true } | count() > 1 | { false }) > ({ true } | count() > 1 | { false })`,
	`({ true } | count() > 1 | { false }) ~ ({ true } | count() > 1 | { false })`,
	`avg(.field) > 1`, `max(duration) >= 1s`, `max(duration) > 1`, `{ true } | max(duration) = 1h`,
	`{ true } | min(duration) = 1h`, `{ true } | sum(duration) = 1h`, `{ true } | max(.a) = 1`, `{ true } | max(span.a) = 1`,
	`{ true } | max(resource.a) = 1`, `{ true } | max(1 + .a) = 1`, `{ true } | max((1 + .a) * 2) = 1`,
	`max(duration) > 3s | { status = error || .http.status = 500 }`, `select(.a)`, `{} | select(.a,.b,.c)`,
	`{ true } | { .a }`, `{ true } | count() = 1`, `{ true } | avg(duration) = 1h`, `count() = 1 | { true }`,
	`{ true } | count() = 1 | { true }`,
	`({ true } | count() > 1 | { false }) && ({ true } | count() > 1 | { false })`,
	`({ true } | count() > 1 | { false }) || ({ true } | count() > 1 | { false })`,
	`{ true } | coalesce()`, `{ true } | by(1 + .a) | coalesce()`, `{ true } | by(.a)`, `{ true } | by(1 + .a)`,
	`by(.a) | { true }`, `{ true } | by(name) | count() > 2`, `{ true } | by(.field) | avg(.b) = 2`,
	`{ true } | by(3 * .field - 2) | max(duration) < 1s`,
	// Tempo accepts these; Rubato answers UnsupportedError
	`{} | rate()`, `{} | count_over_time() by (name) with(sample=0.1)`, `{} | min_over_time(duration) by (span.http.path)`,
	`{} | quantile_over_time(duration, 0, 0.9, 1) by (span.http.path)`, `{ nestedSetLeft > 3 }`,
	`{ } >> { kind = server } | select(nestedSetLeft, nestedSetRight, nestedSetParent)`,
}

var tempoInvalid = []string{
	`true`, `[ true ]`, `( true )`, `{ . }`, `{ < }`, `{ .a < }`, `{ .a < 3`, `{ (.a < 3 }`, `{ attribute = 4 }`,
	`{ .attribute == 4 }`, `{ span. }`, `{ true } + { true }`, `{ true } - { true }`, `{ true } * { true }`,
	`{ true } / { true }`, `{ true } ^ { true }`, `{ true } = { true }`, `{ true } <= { true }`, `{ true } >= { true }`,
	`max(name) = "foo"`, `avg("foo") = "bar"`, `max(status) = ok`, `max(kind) = consumer`, `max(duration) < ok`,
	`min(1) = "foo"`, `min(parent) = nil`, `avg(childCount) > "foo"`, `avg(.field) + 1`, `sum(3) - 2`,
	`min(childCount) && 2`, `select(.a`, `select()`, `select(1 + "string")`, `coalesce() | { true }`,
	`count() > 3 && { true }`, `{ true } | count()`, `{ true } | notAnAggregate() = 1`, `{ true } | count = 1`,
	`{ true } | max() = 1`, `{ true } | by()`, `({ true }) + (count()) = 1`, `({ true }) && (count())`,
	`({ true } | count()) && ({ true } | count()) = 1`, `({ true }) + ({ true }) = 1`,
	`({ true } | count()) + ({ true } | count())`, `(by(namespace) | count()) > 2 * 2`,
	`(by(namespace) | count()) * 2 > 2`, `2 < (by(namespace) | count())`, `{ trace:status = error }`,
	`{ trace:kind = server }`, `{ trace:name = "a" }`, `{ trace:rootServiceName = "a" }`, `{ span:rootName = "bar" }`,
	// validation failures
	`{ status }`, `{ kind }`, `{ ok }`, `{ 1.1 }`, `{ 1h }`, `{ "foo" }`, `{ 1 + 1 }`, `{ 1 + "foo" = 1 }`,
	`{ 1 - true = 1 }`, `{ 1 / ok = 1 }`, `{ 1 ^ name = 1 }`, `{ 1 = "foo" }`, `{ 1 != true }`, `{ 1 > ok }`,
	`{ 1 = name }`, `{ 1 =~ 2}`, `{ 1 !~ 2}`, `{ 1 && "foo" }`, `{ 1 || ok }`, `{ true || 1.1 }`, `{ status > ok }`,
	`{ kind < consumer }`, `{ traceDuration > "test" }`, `{ rootServiceName = 1 }`, `{ rootName != 3.2 }`,
	`{ span.foo =~ "[" }`, `{ span.foo !~ "[" }`, `{ -true }`, `{ -"foo" = "bar" }`, `{ -ok = status }`,
	`{ -name = "foo" }`, `{ !"foo" = "bar" }`, `{ !ok = status }`, `{ !consumer = kind }`, `{ !name = "foo" }`,
	`{ !1 = 1 }`, `{ !1h = 1 }`, `{ !1.1 = 1.1 }`, `min(1 = 3) = 1`, `sum(3) = 2`, `sum(3) = min(14)`,
	`min(2h) < max(duration)`, `min(3) = max(duration)`, `min(1) = max(2) + 3`, `min(1.1 - 3) > 1`,
	`max(1h + 2h) > 1`, `{ true } | by(1)`, `{ true } | by("foo")`,
	// Tempo: unsupported
	`min(.field) < max(duration)`, `sum(.field) = min(.field)`, `min(.field) + max(.field) > 1`,
	`{ true } | max(parent.a) = 1`, `{ .http.status = 200 } | max(.field) - min(.field) > 3`, `{ parent.a != 3 }`,
	`{ parent = nil }`, `{ parent }`, `{ true } | count() + count() = 1`, `({ true } | count()) + ({ true } | count()) = 1`,
	`({ .a } | count()) > ({ .b } | count())`, `3 = 2`, `avg(.field) > 1 - 3`,
}

func TestTempoExamples(t *testing.T) {
	for _, q := range tempoValid {
		_, err := Parse(q)
		var ue *UnsupportedError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("Tempo accepts %q, Rubato: %v", q, err)
		}
	}
	for _, q := range tempoInvalid {
		_, err := Parse(q)
		require.Error(t, err, "Tempo rejects %q", q)
		var pe *ParseError
		var ue *UnsupportedError
		require.True(t, errors.As(err, &pe) || errors.As(err, &ue), "%q: %T", q, err)
	}
}
