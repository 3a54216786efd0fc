package traceql

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF tokKind = iota
	tLBrace
	tRBrace
	tLParen
	tRParen
	tComma
	tPipe
	tString
	tInt
	tFloat
	tDuration
	tIdent     // keyword or function name
	tAttr      // scoped or unscoped attribute
	tIntrinsic // intrinsic field
	// operators
	tEq
	tNe
	tRe
	tNre
	tGt
	tGe
	tLt
	tLe
	tAnd
	tOr
	tNot
	tAdd
	tSub
	tMul
	tDiv
	tMod
	tPow
	tDesc      // >>
	tAnce      // <<
	tTilde     // ~
	tNotChild  // !>
	tNotDesc   // !>>
	tNotParent // !<
	tNotAnce   // !<<
	tUChild    // &>
	tUDesc     // &>>
	tUParent   // &<
	tUAnce     // &<<
	tUSibl     // &~
	tNotSibl   // the spanset operator !~ (lexed as tNre, renamed by the parser)
)

var tokText = map[tokKind]string{
	tEOF: "end of query", tLBrace: "{", tRBrace: "}", tLParen: "(", tRParen: ")", tComma: ",",
	tPipe: "|", tEq: "=", tNe: "!=", tRe: "=~", tNre: "!~", tGt: ">", tGe: ">=", tLt: "<",
	tLe: "<=", tAnd: "&&", tOr: "||", tNot: "!", tAdd: "+", tSub: "-", tMul: "*", tDiv: "/",
	tMod: "%", tPow: "^", tDesc: ">>", tAnce: "<<", tTilde: "~", tNotChild: "!>", tNotDesc: "!>>",
	tNotParent: "!<", tNotAnce: "!<<", tUChild: "&>", tUDesc: "&>>", tUParent: "&<", tUAnce: "&<<",
	tUSibl: "&~", tNotSibl: "!~",
}

type token struct {
	kind tokKind
	pos  int
	text string // source text

	s     string // string literal value, identifier, attribute name
	i     int64
	f     float64
	d     time.Duration
	scope Scope     // tAttr
	intr  intrinsic // tIntrinsic
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return "string " + t.text
	case tInt, tFloat, tDuration:
		return "number " + t.text
	case tIdent:
		return "identifier " + strconv.Quote(t.text)
	case tAttr:
		return "attribute " + t.text
	case tIntrinsic:
		return "intrinsic " + t.text
	}
	return strconv.Quote(t.text)
}

type lexer struct {
	src  string
	pos  int
	toks []token
}

func newParseError(src string, pos int, msg string) *ParseError {
	if pos > len(src) {
		pos = len(src)
	}
	line, col := 1, 1
	for i := 0; i < pos; i++ {
		if src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &ParseError{Pos: pos, Line: line, Col: col, Msg: msg}
}

func lex(src string) ([]token, error) {
	l := &lexer{src: src}
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		l.toks = append(l.toks, t)
		if t.kind == tEOF {
			return l.toks, nil
		}
	}
}

func (l *lexer) errf(pos int, msg string) error { return newParseError(l.src, pos, msg) }

// isAttrRune reports whether r may appear in an unquoted attribute name
// (Tempo's lexer: anything but whitespace and the terminal characters).
func isAttrRune(r rune) bool {
	if unicode.IsSpace(r) {
		return false
	}
	switch r {
	case '{', '}', '(', ')', '=', '~', '!', '<', '>', '&', '|', '^', ',', '"', utf8.RuneError:
		return false
	}
	return true
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentByte(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func (l *lexer) next() (token, error) {
	src := l.src
	for l.pos < len(src) {
		r, n := utf8.DecodeRuneInString(src[l.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		l.pos += n
	}
	start := l.pos
	if start >= len(src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := src[start]
	op := func(k tokKind, n int) (token, error) {
		l.pos += n
		return token{kind: k, pos: start, text: src[start:l.pos]}, nil
	}
	peek := func(i int) byte {
		if start+i < len(src) {
			return src[start+i]
		}
		return 0
	}
	switch c {
	case '{':
		return op(tLBrace, 1)
	case '}':
		return op(tRBrace, 1)
	case '(':
		return op(tLParen, 1)
	case ')':
		return op(tRParen, 1)
	case ',':
		return op(tComma, 1)
	case '+':
		return op(tAdd, 1)
	case '-':
		return op(tSub, 1)
	case '*':
		return op(tMul, 1)
	case '/':
		return op(tDiv, 1)
	case '%':
		return op(tMod, 1)
	case '^':
		return op(tPow, 1)
	case '~':
		return op(tTilde, 1)
	case '|':
		if peek(1) == '|' {
			return op(tOr, 2)
		}
		return op(tPipe, 1)
	case '=':
		if peek(1) == '~' {
			return op(tRe, 2)
		}
		return op(tEq, 1)
	case '!':
		switch peek(1) {
		case '=':
			return op(tNe, 2)
		case '~':
			return op(tNre, 2)
		case '>':
			if peek(2) == '>' {
				return op(tNotDesc, 3)
			}
			return op(tNotChild, 2)
		case '<':
			if peek(2) == '<' {
				return op(tNotAnce, 3)
			}
			return op(tNotParent, 2)
		}
		return op(tNot, 1)
	case '>':
		switch peek(1) {
		case '=':
			return op(tGe, 2)
		case '>':
			return op(tDesc, 2)
		}
		return op(tGt, 1)
	case '<':
		switch peek(1) {
		case '=':
			return op(tLe, 2)
		case '<':
			return op(tAnce, 2)
		}
		return op(tLt, 1)
	case '&':
		switch peek(1) {
		case '&':
			return op(tAnd, 2)
		case '>':
			if peek(2) == '>' {
				return op(tUDesc, 3)
			}
			return op(tUChild, 2)
		case '<':
			if peek(2) == '<' {
				return op(tUAnce, 3)
			}
			return op(tUParent, 2)
		case '~':
			return op(tUSibl, 2)
		}
		return token{}, l.errf(start, "unexpected character '&'")
	case '"', '`':
		return l.lexString()
	case '.':
		l.pos++
		return l.lexAttr(start, ScopeUnscoped)
	}
	if c >= '0' && c <= '9' {
		return l.lexNumber()
	}
	if isIdentStart(c) {
		return l.lexWord()
	}
	r, _ := utf8.DecodeRuneInString(src[start:])
	return token{}, l.errf(start, "unexpected character "+strconv.QuoteRune(r))
}

func (l *lexer) lexString() (token, error) {
	src, start := l.src, l.pos
	q := src[start]
	i := start + 1
	for i < len(src) {
		switch src[i] {
		case q:
			lit := src[start : i+1]
			l.pos = i + 1
			var s string
			if q == '`' {
				s = lit[1 : len(lit)-1]
			} else {
				var err error
				s, err = strconv.Unquote(lit)
				if err != nil {
					return token{}, l.errf(start, "invalid string literal "+lit)
				}
			}
			if !utf8.ValidString(s) {
				return token{}, l.errf(start, "string literal is not valid UTF-8")
			}
			return token{kind: tString, pos: start, text: lit, s: s}, nil
		case '\\':
			if q == '"' {
				i++
			}
		case '\n':
			if q == '"' {
				return token{}, l.errf(start, "newline in string literal")
			}
		}
		i++
	}
	return token{}, l.errf(start, "unterminated string literal")
}

// lexAttr reads an attribute name after its scope prefix (l.pos is just past
// the '.'). Unquoted runs and "quoted" runs may be mixed:
// span.attribute."name with space".
func (l *lexer) lexAttr(start int, scope Scope) (token, error) {
	src := l.src
	var b strings.Builder
	for l.pos < len(src) {
		if src[l.pos] == '"' {
			qs := l.pos
			i := l.pos + 1
			closed := false
			for i < len(src) {
				if src[i] == '\\' && i+1 < len(src) && (src[i+1] == '"' || src[i+1] == '\\') {
					b.WriteByte(src[i+1])
					i += 2
					continue
				}
				if src[i] == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(src[i])
				i++
			}
			if !closed {
				return token{}, l.errf(qs, "unterminated quoted attribute name")
			}
			l.pos = i
			continue
		}
		r, n := utf8.DecodeRuneInString(src[l.pos:])
		if !isAttrRune(r) {
			break
		}
		b.WriteString(src[l.pos : l.pos+n])
		l.pos += n
	}
	name := b.String()
	if name == "" {
		return token{}, l.errf(start, "attribute name expected after "+strconv.Quote(src[start:l.pos]))
	}
	if !utf8.ValidString(name) {
		return token{}, l.errf(start, "attribute name is not valid UTF-8")
	}
	return token{kind: tAttr, pos: start, text: src[start:l.pos], s: name, scope: scope}, nil
}

// unsupportedIntrinsics are valid in Tempo but not evaluated by Rubato.
var unsupportedIntrinsics = map[string]bool{
	"parent": true, "nestedSetLeft": true, "nestedSetRight": true, "nestedSetParent": true,
	"span:parent": true, "span:nestedSetLeft": true, "span:nestedSetRight": true, "span:nestedSetParent": true,
	"traceStartTime": true, "spanStartTime": true, "span:start": true, "trace:start": true,
}

var attrScopes = map[string]Scope{
	"span": ScopeSpan, "resource": ScopeResource, "event": ScopeEvent, "link": ScopeLink,
	"instrumentation": ScopeInstrumentation,
}

func (l *lexer) lexWord() (token, error) {
	src, start := l.src, l.pos
	i := start
	for i < len(src) && isIdentByte(src[i]) {
		i++
	}
	word := src[start:i]
	if i < len(src) && src[i] == '.' {
		if sc, ok := attrScopes[word]; ok {
			l.pos = i + 1
			return l.lexAttr(start, sc)
		}
		if word == "parent" {
			return token{}, &UnsupportedError{Feature: "parent. attribute scope"}
		}
	}
	if i < len(src) && src[i] == ':' && i+1 < len(src) && isIdentStart(src[i+1]) {
		j := i + 1
		for j < len(src) && isIdentByte(src[j]) {
			j++
		}
		full := src[start:j]
		l.pos = j
		if in, ok := intrinsicNames[full]; ok {
			return token{kind: tIntrinsic, pos: start, text: full, intr: in}, nil
		}
		if unsupportedIntrinsics[full] {
			return token{}, &UnsupportedError{Feature: "intrinsic " + full}
		}
		return token{}, l.errf(start, "unknown intrinsic "+strconv.Quote(full))
	}
	l.pos = i
	if in, ok := intrinsicNames[word]; ok {
		return token{kind: tIntrinsic, pos: start, text: word, intr: in}, nil
	}
	return token{kind: tIdent, pos: start, text: word, s: word}, nil
}

var durUnits = []struct {
	s string
	d time.Duration
}{
	{"ns", time.Nanosecond}, {"us", time.Microsecond}, {"µs", time.Microsecond},
	{"μs", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second},
	{"m", time.Minute}, {"h", time.Hour},
}

// scanNumber returns the end of the decimal number at i and whether it is a float.
func scanNumber(src string, i int) (int, bool) {
	isFloat := false
	for i < len(src) && src[i] >= '0' && src[i] <= '9' {
		i++
	}
	if i+1 < len(src) && src[i] == '.' && src[i+1] >= '0' && src[i+1] <= '9' {
		isFloat = true
		i++
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < len(src) && src[j] >= '0' && src[j] <= '9' {
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			return j, true
		}
	}
	return i, isFloat
}

func matchUnit(src string, i int) (int, time.Duration) {
	// longest match first: "ms" before "m", "ns"/"us" before nothing
	best, bestD := 0, time.Duration(0)
	for _, u := range durUnits {
		if strings.HasPrefix(src[i:], u.s) && len(u.s) > best {
			best, bestD = len(u.s), u.d
		}
	}
	return best, bestD
}

func (l *lexer) lexNumber() (token, error) {
	src, start := l.src, l.pos
	end, isFloat := scanNumber(src, start)
	if n, _ := matchUnit(src, end); n > 0 {
		// duration: one or more number+unit pairs (1h30m, 1.5s)
		var total float64
		i := start
		for {
			e, _ := scanNumber(src, i)
			if e == i {
				break
			}
			un, ud := matchUnit(src, e)
			if un == 0 {
				return token{}, l.errf(start, "invalid duration "+strconv.Quote(src[start:e]))
			}
			v, err := strconv.ParseFloat(src[i:e], 64)
			if err != nil {
				return token{}, l.errf(start, "invalid duration "+strconv.Quote(src[start:e+un]))
			}
			total += v * float64(ud)
			i = e + un
			if i >= len(src) || src[i] < '0' || src[i] > '9' {
				break
			}
		}
		if i < len(src) && (isIdentByte(src[i]) || src[i] == '.') {
			return token{}, l.errf(start, "invalid duration "+strconv.Quote(src[start:i+1]))
		}
		if total >= math.MaxInt64 {
			return token{}, l.errf(start, "duration out of range "+strconv.Quote(src[start:i]))
		}
		l.pos = i
		return token{kind: tDuration, pos: start, text: src[start:i], d: time.Duration(total)}, nil
	}
	if end < len(src) && (isIdentByte(src[end]) || src[end] == '.') {
		return token{}, l.errf(start, "invalid number "+strconv.Quote(src[start:end+1]))
	}
	l.pos = end
	text := src[start:end]
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			return token{}, l.errf(start, "float out of range "+text)
		}
		return token{kind: tFloat, pos: start, text: text, f: f}, nil
	}
	// An integer one past MaxInt64 is accepted only for `-9223372036854775808`;
	// the parser checks it is negated.
	u, err := strconv.ParseUint(text, 10, 64)
	if err != nil || u > 1<<63 {
		return token{}, l.errf(start, "integer out of range "+text)
	}
	return token{kind: tInt, pos: start, text: text, i: int64(u)}, nil
}
