package yamlkeys

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Finding is one key the walked type does not use.
type Finding struct {
	// Path is the key's full dotted path from the document root, with
	// [i] for sequence items (e.g. overrides.defaults.ingestion.rate_limt_bytes).
	Path string
	// Line is the key's line in the document (1-based).
	Line int
	// Ignored marks a key known to be accepted and ignored on purpose (a
	// Tempo or Collector setting Rubato has no use for).
	Ignored bool
	// Value is the key's subtree re-encoded as YAML, for deciding whether
	// it actually sets anything.
	Value *yaml.Node
}

func (f Finding) String() string { return fmt.Sprintf("%s (line %d)", f.Path, f.Line) }

// SetsValue reports whether the key's subtree holds any non-empty scalar
// (`tls: {cert_file: ""}` sets nothing, `tls: {cert_file: a.pem}` does).
func (f Finding) SetsValue() bool { return setsValue(f.Value, 0) }

func setsValue(n *yaml.Node, depth int) bool {
	if n == nil || depth > maxDepth {
		return false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Tag != "!!null" && n.Value != ""
	case yaml.AliasNode:
		return setsValue(n.Alias, depth+1)
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if setsValue(n.Content[i], depth+1) {
				return true
			}
		}
		return false
	}
	for _, c := range n.Content {
		if setsValue(c, depth+1) {
			return true
		}
	}
	return false
}

// Schemer is implemented by a type whose YAML layout differs from its
// fields: YAMLSchema returns a value whose type has the layout.
type Schemer interface{ YAMLSchema() any }

// Ignorer is implemented by a type that accepts keys it does not use.
type Ignorer interface{ IgnoredYAMLKeys() []string }

// Options tune Check.
type Options struct {
	// Prefix is prepended to every path (e.g. a file name, or the path of
	// the node being checked).
	Prefix string
	// Ignored are dotted path patterns of keys accepted and ignored; a "*"
	// segment matches any one key.
	Ignored []string
}

// Check walks n (a document or any node) along the type of v (a value or
// a pointer) and returns the keys that type does not use.
func Check(n *yaml.Node, v any, o Options) []Finding {
	w := &walker{opts: o}
	for _, p := range o.Ignored {
		w.ignored = append(w.ignored, strings.Split(p, "."))
	}
	w.walk(n, reflect.TypeOf(v), o.Prefix, 0)
	return w.out
}

var (
	schemerType    = reflect.TypeFor[Schemer]()
	ignorerType    = reflect.TypeFor[Ignorer]()
	unmarshalerTyp = reflect.TypeFor[yaml.Unmarshaler]()
)

type walker struct {
	opts    Options
	ignored [][]string
	out     []Finding
}

// maxDepth stops alias loops and absurd nesting.
const maxDepth = 64

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n == nil || t == nil || depth > maxDepth {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			w.walk(c, t, path, depth+1)
		}
		return
	case yaml.AliasNode:
		w.walk(n.Alias, t, path, depth+1)
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := implements(t, schemerType); ok {
		schema := s.Interface().(Schemer).YAMLSchema()
		if st := reflect.TypeOf(schema); st != t {
			w.walk(n, st, path, depth+1)
			return
		}
	}
	if _, ok := implements(t, unmarshalerTyp); ok {
		return // a leaf with its own syntax
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind == yaml.MappingNode {
			w.walkStruct(n, t, path, depth)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), depth+1)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
	}
}

func (w *walker) walkStruct(n *yaml.Node, t reflect.Type, path string, depth int) {
	fields := map[string]reflect.Type{}
	var inlineMap reflect.Type
	var ignored []string
	collectFields(t, fields, &inlineMap, &ignored)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" { // merge key: its mapping belongs to this struct
			w.walk(v, t, path, depth+1)
			continue
		}
		p := join(path, k.Value)
		if ft, ok := fields[k.Value]; ok {
			w.walk(v, ft, p, depth+1)
			continue
		}
		if inlineMap != nil {
			w.walk(v, inlineMap.Elem(), p, depth+1)
			continue
		}
		f := Finding{Path: p, Line: k.Line, Value: v}
		f.Ignored = contains(ignored, k.Value) || w.matchIgnored(p)
		w.out = append(w.out, f)
	}
}

// collectFields gathers the YAML keys of struct t, following inline fields
// as yaml.v3 does.
func collectFields(t reflect.Type, fields map[string]reflect.Type, inlineMap *reflect.Type, ignored *[]string) {
	if v, ok := implements(t, ignorerType); ok {
		*ignored = append(*ignored, v.Interface().(Ignorer).IgnoredYAMLKeys()...)
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue // unexported: yaml.v3 ignores it
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := false
		for _, o := range strings.Split(opts, ",") {
			inline = inline || o == "inline"
		}
		if inline {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Map:
				*inlineMap = ft
			case reflect.Struct:
				collectFields(ft, fields, inlineMap, ignored)
			}
			continue
		}
		if f.PkgPath != "" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
}

// implements returns a value of t (or *t) implementing iface.
func implements(t reflect.Type, iface reflect.Type) (reflect.Value, bool) {
	if t.Implements(iface) {
		return reflect.Zero(t), t.Kind() != reflect.Interface
	}
	if reflect.PointerTo(t).Implements(iface) {
		return reflect.New(t), true
	}
	return reflect.Value{}, false
}

func (w *walker) matchIgnored(path string) bool {
	segs := strings.Split(strings.TrimPrefix(path, w.opts.Prefix+"."), ".")
	for _, pat := range w.ignored {
		if len(pat) != len(segs) {
			continue
		}
		ok := true
		for i := range pat {
			if pat[i] != "*" && pat[i] != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func join(path, key string) string {
	if key == "" {
		key = `""` // an empty or non-scalar key still gets a visible path
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
