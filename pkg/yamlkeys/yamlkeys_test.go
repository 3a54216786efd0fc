package yamlkeys

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type leaf struct {
	Endpoint string        `yaml:"endpoint"`
	Timeout  time.Duration `yaml:"timeout"`
	TLS      *tlsBlock     `yaml:"tls,omitempty"`
}

type tlsBlock struct {
	CertFile string `yaml:"cert_file"`
}

func (tlsBlock) IgnoredYAMLKeys() []string { return []string{"reload_interval"} }

type base struct {
	Shared int `yaml:"shared"`
}

// custom has its own YAML syntax (a layout unlike its fields).
type custom struct{ n int }

func (c *custom) UnmarshalYAML(*yaml.Node) error { return nil }
func (*custom) YAMLSchema() any {
	return struct {
		Limits struct {
			Rate int `yaml:"rate_limit_bytes"`
		} `yaml:"ingestion"`
	}{}
}

// scalar has its own syntax and no schema: a leaf.
type scalar int

func (s *scalar) UnmarshalYAML(*yaml.Node) error { return nil }

type root struct {
	base      `yaml:",inline"`
	Name      string            `yaml:"name"`
	Leaves    map[string]*leaf  `yaml:"leaves"`
	List      []leaf            `yaml:"list"`
	Custom    custom            `yaml:"custom"`
	Scalar    scalar            `yaml:"scalar"`
	NoTag     int               // yaml.v3 calls it "notag"
	Skipped   int               `yaml:"-"`
	Extra     map[string]string `yaml:"extra"`
	unexposed int
}

func check(t *testing.T, doc string, o Options) []Finding {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(doc), &n))
	return Check(&n, &root{}, o)
}

func paths(fs []Finding, ignored bool) []string {
	var out []string
	for _, f := range fs {
		if f.Ignored == ignored {
			out = append(out, f.Path)
		}
	}
	return out
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name         string
		doc          string
		opts         Options
		unknown, ign []string
		firstLine    int
	}{
		{name: "all known", doc: "shared: 1\nname: x\nleaves:\n  a:\n    endpoint: e\n    tls:\n      cert_file: c\nlist:\n  - timeout: 1s\ncustom:\n  ingestion:\n    rate_limit_bytes: 1\nscalar: {weird: syntax}\nnotag: 1\nextra:\n  anything: goes\n"},
		{name: "top level", doc: "name: x\nnmae: y\n", unknown: []string{"nmae"}, firstLine: 2},
		{name: "inside map values", doc: "leaves:\n  a:\n    endpoint: e\n    endpiont: f\n", unknown: []string{"leaves.a.endpiont"}, firstLine: 4},
		{name: "inside sequence items", doc: "list:\n  - endpoint: e\n  - timeuot: 1s\n", unknown: []string{"list[1].timeuot"}},
		{name: "through a schema", doc: "custom:\n  ingestion:\n    rate_limt_bytes: 1\n", unknown: []string{"custom.ingestion.rate_limt_bytes"}},
		{name: "a Go field name is not a key", doc: "Name: x\nunexposed: 1\nskipped: 1\n", unknown: []string{"Name", "unexposed", "skipped"}},
		{name: "ignored by the type", doc: "leaves:\n  a:\n    tls:\n      reload_interval: 1m\n      ca_file: x\n", unknown: []string{"leaves.a.tls.ca_file"}, ign: []string{"leaves.a.tls.reload_interval"}},
		{name: "ignored by pattern", doc: "usage_report: {reporting_enabled: false}\nleaves:\n  a:\n    log_spans: true\n  b:\n    log_spans: true\n", opts: Options{Ignored: []string{"usage_report", "leaves.*.log_spans"}}, ign: []string{"usage_report", "leaves.a.log_spans", "leaves.b.log_spans"}},
		{name: "merge keys and anchors", doc: "defaults: &d\n  endpoint: e\n  bogus: 1\nleaves:\n  a:\n    <<: *d\n", unknown: []string{"defaults", "leaves.a.bogus"}},
		{name: "type mismatch is the decoder's", doc: "leaves: 3\nlist: {a: 1}\n"},
		{name: "prefix", doc: "nmae: y\n", opts: Options{Prefix: "file.yaml"}, unknown: []string{"file.yaml.nmae"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := check(t, tc.doc, tc.opts)
			require.Equal(t, tc.unknown, paths(fs, false))
			require.Equal(t, tc.ign, paths(fs, true))
			if tc.firstLine != 0 {
				require.Equal(t, tc.firstLine, fs[0].Line)
			}
		})
	}
}

func TestSetsValue(t *testing.T) {
	for doc, want := range map[string]bool{
		"x: {cert_file: \"\", key_file: null}\n": false,
		"x: {cert_file: a.pem}\n":                true,
		"x: [\"\", b]\n":                         true,
		"x:\n":                                   false,
	} {
		var n yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(doc), &n))
		fs := Check(&n, &struct{}{}, Options{})
		require.Len(t, fs, 1)
		require.Equal(t, want, fs[0].SetsValue(), doc)
	}
}

// FuzzCheck: any YAML the parser accepts is walked without a panic, and
// every finding has a path.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"name: x\nleaves:\n  a: {endpoint: e, tls: {cert_file: c}}\n", "a: &a [*a]\n", "<<: {shared: 1}\nlist: [{x: 1}]\n", "custom: {ingestion: {x: 1}}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var n yaml.Node
		if yaml.Unmarshal(data, &n) != nil {
			return
		}
		for _, fd := range Check(&n, &root{}, Options{Ignored: []string{"*.x"}}) {
			if fd.Path == "" {
				t.Fatalf("finding without a path in %q", data)
			}
			_ = fd.SetsValue()
		}
	})
}
