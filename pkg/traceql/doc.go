// Package traceql is Rubato's TraceQL lexer, parser and engine for search
// queries. Parse turns a query into a compiled *Query; Query.Eval evaluates
// it over one whole trace (OTLP) and returns the matching spansets;
// Query.Conditions summarises it for predicate pushdown.
//
// # Invariants
//
//   - Parse never panics. Errors are *ParseError (byte offset, 1-based line
//     and column, message) or *UnsupportedError naming a valid TraceQL
//     feature Rubato does not evaluate (metrics functions, with(...) hints,
//     the parent scope, nested-set intrinsics). Nothing unsupported is
//     silently evaluated differently.
//   - String() is canonical: Parse(q.String()).String() == q.String().
//     Binary operators inside a filter are fully parenthesised.
//   - Eval looks only at the trace it is given, keeps no state between
//     calls and is safe for concurrent use. Results point into the trace:
//     spans, resources and scopes, and the AnyValues of result attributes
//     are the trace's own; status and kind values are shared by all results
//     of a Query. Callers must not modify either. A trace that does not
//     match costs no allocation.
//   - Conditions is conservative: if Eval returns a spanset for a trace,
//     the trace satisfies the Conditions (see TestConditionsConservative).
//     Anything it cannot summarise (negation, arithmetic, field-to-field
//     comparison, `= nil`, IDs, event/link intrinsics, the left side of a
//     negated structural operator) contributes no condition.
//
// # Semantics (as Tempo's engine and its vParquet4 storage)
//
//   - Comparisons need matching types; ints, floats and durations compare
//     as numbers (int with int exactly, mixed as float64). A missing
//     attribute is nil and matches neither `=` nor `!=`, nor `<`, `=~`...;
//     `!= nil` tests existence, `= nil` absence; `nil = nil` is false.
//   - Regular expressions are RE2, fully anchored.
//   - Unscoped `.key` is the span's attribute, else the resource's.
//   - A bare attribute used as a condition (`{ .cache.hit }`,
//     `{ .a || .b = 1 }`) means `= true`.
//   - Arrays: `=`, `=~`, `<`... match if any element does; `!=`, `!~` if
//     every element does.
//   - `{A} && {B}` returns the union of A's and B's spans when both match;
//     `||` the union when either does. Structural operators return the right
//     side's spans (`{A} > {B}`: B spans whose parent is an A span; `<`: B
//     spans that are the parent of an A span; `>>`/`<<` descendants and
//     ancestors; `~`: B spans with a different sibling in A); negated forms
//     return the B spans for which the relation does not hold; union forms
//     (`&>` ...) return both sides' participating spans. With more than one
//     spanset on a side (after by()) they fail with
//     ErrSpansetOperationMultiple, as Tempo does.
//   - Aggregates count() avg() min() max() sum() add a spanset attribute
//     named by the aggregate ("count()", "avg(duration)"); nil values are
//     skipped and a spanset with no value left is dropped. sum and avg keep
//     the first value's type and add only later values of that type (avg
//     still counts the others); avg of ints is a float, of durations a
//     duration. min and max compare numbers as numbers, other types by
//     Tempo's type order (so a string beats any int). by(f) splits a spanset
//     into one per value of f and adds "by(f)" = value ("nil" when absent);
//     coalesce() merges all spansets into one without attributes; select()
//     leaves spansets alone.
//   - Result spans carry, as Tempo's search results do, the values of the
//     fields the query names (filters, by, aggregates, select), keyed by
//     attribute name without scope; name, duration, IDs and trace-level
//     intrinsics are left out; durations, statuses and kinds are strings.
//   - The trace's root (for rootName, rootServiceName) is, as Tempo picks
//     it, the last span without a parent span ID, with a resource, and
//     without a child_of link into its own trace; rootName and
//     rootServiceName are "" when there is none (Tempo keeps
//     them in non-null trace-level columns), as are instrumentation:name and
//     instrumentation:version for a span without a scope.
//     traceDuration is max(end) - min(start) over all spans.
//   - Structural operators use Tempo's span tree (its nested set model):
//     roots are spans without a parent span ID; a Zipkin client/server pair
//     sharing an ID resolves children by kind; spans not reachable from a
//     root (orphans and their subtrees, cycles) are disconnected and take no
//     part in any structural operator, negated ones included; with no root
//     or more than two spans per ID every span is disconnected. Roots are
//     siblings of each other.
//
// # Deliberate differences from Tempo
//
//   - Event and link conditions are existential per comparison: a span
//     matches `event.a = 1` when some event of it has a = 1. (Tempo's
//     result for several event conditions in one filter depends on its
//     storage layout.)
//   - Trace and span ID literals compared with = or != are left-padded with
//     zeros and lowercased, so `trace:id = "abc"` finds trace 00…0abc.
//   - Integer `^` computes lhs^rhs (Tempo's int path swaps the operands);
//     integer division or modulo by zero yields nil instead of a panic;
//     `!x` for a non-boolean x is false instead of an error.
//   - Spansets and spans come out in trace order and by() groups in order of
//     first appearance (Tempo's order follows Go map iteration).
//   - A span whose end precedes its start has duration 0 (Tempo's unsigned
//     subtraction wraps). Event and link attributes are not reported on
//     result spans.
//
// # Pushdown
//
// Conditions speaks the vocabulary of block predicates: ScopeUnscoped means
// "the span's or its resource's attribute", ScopeIntrinsic names one of
// name status kind duration statusMessage (span level) or rootName
// rootServiceName traceDuration (trace level). Status and Kind literals use
// OTLP's numbering. A reader may drop a trace only if it cannot satisfy the
// Conditions; everything it keeps is decided by Eval.
//
// Package traceqltest generates random traces and queries (39 shapes) for
// differential tests against Eval.
package traceql
