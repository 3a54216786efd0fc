package querier

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-logfmt/logfmt"
)

// parseLogfmtTags decodes the legacy `tags` parameter (logfmt, as Tempo);
// a key given twice is an error.
func parseLogfmtTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	dec := logfmt.NewDecoder(strings.NewReader(s))
	for dec.ScanRecord() {
		for dec.ScanKeyval() {
			k := string(dec.Key())
			if _, dup := tags[k]; dup {
				return nil, fmt.Errorf("invalid tags: tag %s has been set twice", k)
			}
			tags[k] = string(dec.Value())
		}
	}
	if err := dec.Err(); err != nil {
		var se *logfmt.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid tags: %s at pos %d", se.Msg, se.Pos)
		}
		return nil, fmt.Errorf("invalid tags: %w", err)
	}
	return tags, nil
}

// legacyStatus maps the values Tempo's legacy tag search accepted for
// status.code to TraceQL status keywords.
var legacyStatus = map[string]string{
	"0": "unset", "unset": "unset", "status_code_unset": "unset",
	"1": "ok", "ok": "ok", "status_code_ok": "ok",
	"2": "error", "error": "error", "status_code_error": "error",
}

// LegacyToTraceQL turns a legacy tag search (tags, minDurationMs,
// maxDurationMs) into the equivalent TraceQL. Tempo's legacy search matched
// a tag value as a substring and a duration on the whole trace; each tag is
// its own spanset so that, as before, different tags may match different
// spans of the trace:
//
//	service.name=api  -> { resource.service.name =~ ".*api.*" }
//	root.service.name -> rootServiceName, root.name -> rootName, name -> name
//	status.code=error -> { status = error }
//	other k=v         -> { .k =~ ".*v.*" } (or .k = v when v is an integer)
//	minDuration       -> { traceDuration >= 100ms }
//
// With nothing to match it returns "{}".
func LegacyToTraceQL(tags map[string]string, minDurationMs, maxDurationMs uint32) (string, error) {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic query text
	var parts []string
	for _, k := range keys {
		v := tags[k]
		if k == "" || strings.ContainsAny(k, " \t\r\n{}()\"=!<>~&|,") {
			return "", fmt.Errorf("invalid tags: tag name %q cannot be searched", k)
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return "", fmt.Errorf("invalid tags: tag %q: names and values must be UTF-8", k)
		}
		var cond string
		switch k {
		case "status.code":
			kw, ok := legacyStatus[strings.ToLower(v)]
			if !ok {
				return "", fmt.Errorf("invalid tags: status.code %q: want unset, ok or error", v)
			}
			cond = "status = " + kw
		case "root.service.name":
			cond = "rootServiceName =~ " + substringRegex(v)
		case "root.name":
			cond = "rootName =~ " + substringRegex(v)
		case "name":
			cond = "name =~ " + substringRegex(v)
		case "service.name":
			cond = "resource.service.name =~ " + substringRegex(v)
		default:
			attr := "." + k
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				cond = fmt.Sprintf("%s = %d || %s =~ %s", attr, n, attr, substringRegex(v))
			} else {
				cond = attr + " =~ " + substringRegex(v)
			}
		}
		parts = append(parts, "{ "+cond+" }")
	}
	var dur []string
	if minDurationMs > 0 {
		dur = append(dur, "traceDuration >= "+(time.Duration(minDurationMs)*time.Millisecond).String())
	}
	if maxDurationMs > 0 {
		dur = append(dur, "traceDuration <= "+(time.Duration(maxDurationMs)*time.Millisecond).String())
	}
	if len(dur) > 0 {
		parts = append(parts, "{ "+strings.Join(dur, " && ")+" }")
	}
	if len(parts) == 0 {
		return "{}", nil
	}
	return strings.Join(parts, " && "), nil
}

// substringRegex is a TraceQL string literal holding an anchored regex
// (TraceQL regexes match the whole value) that matches v as a substring.
func substringRegex(v string) string {
	return strconv.Quote(".*" + regexp.QuoteMeta(v) + ".*")
}
