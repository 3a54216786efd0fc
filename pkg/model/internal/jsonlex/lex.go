// Package jsonlex is a small pull reader over one JSON document, made for the
// receiver decoders: it walks objects and arrays without building a tree, and
// hands out keys without copying.
//
// Invariants: the reader never panics on any input; after the first error
// every method returns a zero value and loops driven by NextKey/NextElem end,
// so a decoder built on it always terminates. Nesting deeper than MaxDepth is
// an error, which bounds the stack used by Skip.
package jsonlex

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays accepted.
const MaxDepth = 64

// ErrSyntax is wrapped by every error the reader reports.
var ErrSyntax = errors.New("json: syntax error")

// Reader pulls values from a JSON document. The zero value is not usable;
// call Reset.
type Reader struct {
	data  []byte
	pos   int
	err   error
	depth int
	first bool // next NextKey/NextElem is the first of its container
	buf   []byte
}

// Reset points r at data.
func (r *Reader) Reset(data []byte) {
	r.data, r.pos, r.err, r.depth, r.first = data, 0, nil, 0, false
}

// Err returns the first error met.
func (r *Reader) Err() error { return r.err }

// Fail records err (if none is recorded yet) at the current offset.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w at offset %d: %s", ErrSyntax, r.pos, fmt.Sprintf(format, args...))
	}
}

// End checks that only white space follows the value read.
func (r *Reader) End() error {
	if r.err != nil {
		return r.err
	}
	r.ws()
	if r.pos != len(r.data) {
		r.Fail("trailing data")
	}
	return r.err
}

func (r *Reader) ws() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end or after an error.
func (r *Reader) peek() byte {
	if r.err != nil {
		return 0
	}
	r.ws()
	if r.pos >= len(r.data) {
		return 0
	}
	return r.data[r.pos]
}

// IsNull consumes a null literal if one comes next.
func (r *Reader) IsNull() bool {
	if r.peek() != 'n' {
		return false
	}
	r.literal("null")
	return r.err == nil
}

func (r *Reader) literal(lit string) {
	if len(r.data)-r.pos < len(lit) || string(r.data[r.pos:r.pos+len(lit)]) != lit {
		r.Fail("invalid literal")
		return
	}
	r.pos += len(lit)
}

// Object starts reading an object: it returns false (consuming it) for null,
// and records an error for anything else but an object.
func (r *Reader) Object() bool {
	switch r.peek() {
	case '{':
		return r.open()
	case 'n':
		r.literal("null")
		return false
	}
	r.Fail("expected object")
	return false
}

// Array starts reading an array, like Object.
func (r *Reader) Array() bool {
	switch r.peek() {
	case '[':
		return r.open()
	case 'n':
		r.literal("null")
		return false
	}
	r.Fail("expected array")
	return false
}

func (r *Reader) open() bool {
	r.depth++
	if r.depth > MaxDepth {
		r.Fail("nesting deeper than %d", MaxDepth)
		return false
	}
	r.pos++
	r.first = true
	return true
}

// NextKey returns the next key of the object being read, or false at its
// closing brace (or on error). The key aliases the input unless it held
// escapes, and is valid until the next call on r.
func (r *Reader) NextKey() ([]byte, bool) {
	c := r.peek()
	if c == '}' {
		r.pos++
		r.depth--
		r.first = false
		return nil, false
	}
	if !r.first {
		if c != ',' {
			r.Fail("expected , or }")
			return nil, false
		}
		r.pos++
		c = r.peek()
	}
	r.first = false
	if c != '"' {
		r.Fail("expected key")
		return nil, false
	}
	k := r.str()
	if r.peek() != ':' {
		r.Fail("expected :")
		return nil, false
	}
	r.pos++
	return k, r.err == nil
}

// NextElem reports whether the array being read has another element.
func (r *Reader) NextElem() bool {
	c := r.peek()
	if c == ']' {
		r.pos++
		r.depth--
		r.first = false
		return false
	}
	if r.err != nil || c == 0 {
		r.Fail("unterminated array")
		return false
	}
	if !r.first {
		if c != ',' {
			r.Fail("expected , or ]")
			return false
		}
		r.pos++
	}
	r.first = false
	return true
}

// Bytes reads a string value; it aliases the input unless it held escapes
// and is valid until the next call on r.
func (r *Reader) Bytes() []byte {
	if r.peek() != '"' {
		if !r.IsNull() {
			r.Fail("expected string")
		}
		return nil
	}
	return r.str()
}

// String reads a string value (null reads as "").
func (r *Reader) String() string { return string(r.Bytes()) }

// str reads a string at r.pos (which holds '"').
func (r *Reader) str() []byte {
	r.pos++
	start := r.pos
	for i := r.pos; i < len(r.data); i++ {
		c := r.data[i]
		if c == '"' {
			r.pos = i + 1
			return r.data[start:i]
		}
		if c == '\\' {
			return r.strEscaped(start)
		}
		if c < 0x20 {
			r.pos = i
			r.Fail("control character in string")
			return nil
		}
		if c >= utf8.RuneSelf {
			ru, n := utf8.DecodeRune(r.data[i:])
			if ru == utf8.RuneError && n == 1 {
				r.pos = i
				r.Fail("invalid UTF-8 in string")
				return nil
			}
			i += n - 1
		}
	}
	r.pos = len(r.data)
	r.Fail("unterminated string")
	return nil
}

func (r *Reader) strEscaped(start int) []byte {
	b := append(r.buf[:0], r.data[start:r.pos]...)
	i := r.pos
	for i < len(r.data) {
		c := r.data[i]
		switch {
		case c == '"':
			r.pos = i + 1
			r.buf = b
			return b
		case c < 0x20:
			r.pos = i
			r.Fail("control character in string")
			return nil
		case c >= utf8.RuneSelf:
			ru, n := utf8.DecodeRune(r.data[i:])
			if ru == utf8.RuneError && n == 1 {
				r.pos = i
				r.Fail("invalid UTF-8 in string")
				return nil
			}
			b = append(b, r.data[i:i+n]...)
			i += n
			continue
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(r.data) {
			break
		}
		e := r.data[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			ru, ok := hex4(r.data, i)
			if !ok {
				r.pos = i
				r.Fail("bad \\u escape")
				return nil
			}
			i += 4
			if utf16.IsSurrogate(ru) {
				if lo, ok := hex4(r.data, i+2); ok && i+1 < len(r.data) && r.data[i] == '\\' && r.data[i+1] == 'u' {
					if d := utf16.DecodeRune(ru, lo); d != utf8.RuneError {
						ru = d
						i += 6
					} else {
						ru = utf8.RuneError
					}
				} else {
					ru = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, ru)
		default:
			r.pos = i
			r.Fail("bad escape")
			return nil
		}
	}
	r.pos = len(r.data)
	r.Fail("unterminated string")
	return nil
}

func hex4(d []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(d) {
		return 0, false
	}
	var v rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// number returns the raw text of a number at r.pos, or of a quoted string
// when quoted is allowed (protobuf JSON writes 64-bit integers as strings).
func (r *Reader) number(quoted bool) []byte {
	c := r.peek()
	if c == '"' && quoted {
		s := r.str()
		switch string(s) {
		case "NaN", "Infinity", "-Infinity":
			return s
		}
		// A quoted number follows the grammar of a bare one (as in
		// protojson): no leading zeros, spaces or signs beyond "-".
		if end, ok := scanNumber(s, 0); r.err == nil && (!ok || end != len(s)) {
			r.Fail("invalid number %q", s)
			return nil
		}
		return s
	}
	if c != '-' && (c < '0' || c > '9') {
		r.Fail("expected number")
		return nil
	}
	start := r.pos
	end, ok := scanNumber(r.data, start)
	if !ok {
		r.pos = end
		r.Fail("invalid number")
		return nil
	}
	r.pos = end
	return r.data[start:end]
}

// scanNumber returns the end of the JSON number (RFC 8259 §6) at d[i:]
// and whether it is well formed: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
// Leading zeros ("01"), a bare "-", "1." and ".5" are not numbers.
func scanNumber(d []byte, i int) (int, bool) {
	digits := func() int {
		n := 0
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case digits() == 0:
		return i, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			return i, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, false
		}
	}
	// A number must end where a value ends: "01" is "0" followed by junk.
	if i < len(d) && (d[i] >= '0' && d[i] <= '9' || d[i] == '.' || d[i] == 'e' || d[i] == 'E' || d[i] == '+' || d[i] == '-') {
		return i, false
	}
	return i, true
}

// Int64 reads an integer written as a number or a string. Null reads as 0.
// An integral number in exponent form (1e3) is accepted, as protojson does.
func (r *Reader) Int64() int64 {
	if r.IsNull() {
		return 0
	}
	s := r.number(true)
	if r.err != nil {
		return 0
	}
	if v, ok := parseInt(s); ok {
		return v
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		r.Fail("invalid integer %q", s)
		return 0
	}
	return int64(f)
}

// Uint64 reads an unsigned integer written as a number or a string.
func (r *Reader) Uint64() uint64 {
	if r.IsNull() {
		return 0
	}
	s := r.number(true)
	if r.err != nil {
		return 0
	}
	if v, ok := parseUint(s); ok {
		return v
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f >= math.MaxUint64 {
		r.Fail("invalid unsigned integer %q", s)
		return 0
	}
	return uint64(f)
}

func parseUint(s []byte) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n := v*10 + uint64(c-'0')
		if v > math.MaxUint64/10 || n < v*10 {
			return 0, false
		}
		v = n
	}
	return v, true
}

func parseInt(s []byte) (int64, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	u, ok := parseUint(s)
	if !ok {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// Float64 reads a number, or a string holding a number, "NaN", "Infinity"
// or "-Infinity" (protobuf JSON). Null reads as 0.
func (r *Reader) Float64() float64 {
	if r.IsNull() {
		return 0
	}
	s := r.number(true)
	if r.err != nil {
		return 0
	}
	switch string(s) {
	case "NaN":
		return math.NaN()
	case "Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		r.Fail("invalid number %q", s)
		return 0
	}
	return f
}

// Bool reads true or false (null reads as false). Strings "true"/"false" are
// accepted too.
func (r *Reader) Bool() bool {
	switch r.peek() {
	case 't':
		r.literal("true")
		return r.err == nil
	case 'f':
		r.literal("false")
		return false
	case 'n':
		r.literal("null")
		return false
	case '"':
		switch string(r.str()) {
		case "true":
			return true
		case "false":
			return false
		}
	}
	r.Fail("expected boolean")
	return false
}

// Kind is the type of the next value.
type Kind uint8

// Kinds of value.
const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

// Peek returns the kind of the next value without consuming it.
func (r *Reader) Peek() Kind {
	switch c := r.peek(); {
	case c == 'n':
		return Null
	case c == 't' || c == 'f':
		return Bool
	case c == '"':
		return String
	case c == '[':
		return Array
	case c == '{':
		return Object
	case c == '-' || (c >= '0' && c <= '9'):
		return Number
	}
	return Invalid
}

// Raw reads any value and returns its text (for numbers: the digits).
func (r *Reader) RawNumber() []byte { return r.number(false) }

// Skip consumes one value of any kind, checking its syntax.
func (r *Reader) Skip() {
	switch r.Peek() {
	case Null:
		r.literal("null")
	case Bool:
		r.Bool()
	case String:
		r.str()
	case Number:
		// Only the grammar: a number nobody reads may be out of float64's
		// range (1e700), as protojson and encoding/json allow.
		r.number(false)
	case Array:
		if r.Array() {
			for r.NextElem() {
				r.Skip()
			}
		}
	case Object:
		if r.Object() {
			for _, ok := r.NextKey(); ok; _, ok = r.NextKey() {
				r.Skip()
			}
		}
	default:
		r.Fail("expected value")
	}
}
