package kubetest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// splitDocs parses a multi-document YAML stream (helm's output) into
// objects, skipping empty documents.
func splitDocs(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, yaml.Unmarshal(doc, &m), "document:\n%s", doc)
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// stringDataToData moves a rendered Secret's stringData into data, as the
// API server stores it.
func stringDataToData(o *unstructured.Unstructured) {
	sd, ok := o.Object["stringData"].(map[string]any)
	if !ok {
		return
	}
	data, _ := o.Object["data"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	for k, v := range sd {
		data[k] = base64.StdEncoding.EncodeToString([]byte(fmt.Sprint(v)))
	}
	o.Object["data"] = data
	delete(o.Object, "stringData")
}

// subset reports where want (a rendered object) is not contained in got
// (the object the API server returns), or "" when it is. Maps: every key
// of want must be in got (defaults the server adds are fine); lists: the
// same length, element by element; scalars: equal, numbers by value and
// quantities by amount ("1" and 1, "1Gi" and "1024Mi"). A zero value in
// want (false, 0, "", {}, []) may be missing in got, since the API types
// omit empty fields.
func subset(want, got any, path string) string {
	want, got = normalize(want), normalize(got)
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			if got == nil && len(w) == 0 {
				return ""
			}
			return fmt.Sprintf("%s: want a map, got %v", path, got)
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				if isZero(wv) {
					continue
				}
				return fmt.Sprintf("%s.%s: missing (want %v)", path, k, wv)
			}
			if d := subset(wv, gv, path+"."+k); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			if got == nil && len(w) == 0 {
				return ""
			}
			return fmt.Sprintf("%s: want a list, got %v", path, got)
		}
		if len(w) != len(g) {
			return fmt.Sprintf("%s: want %d elements, got %d (%v)", path, len(w), len(g), g)
		}
		for i := range w {
			if d := subset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	case nil:
		return ""
	default:
		if reflect.DeepEqual(want, got) {
			return ""
		}
		if sameQuantity(want, got) {
			return ""
		}
		return fmt.Sprintf("%s: want %#v, got %#v", path, want, got)
	}
}

// normalize makes numbers float64 whatever decoded them.
func normalize(v any) any {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return v
}

func isZero(v any) bool {
	switch x := normalize(v).(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

func sameQuantity(a, b any) bool {
	qa, err := resource.ParseQuantity(fmt.Sprint(a))
	if err != nil {
		return false
	}
	qb, err := resource.ParseQuantity(fmt.Sprint(b))
	if err != nil {
		return false
	}
	return qa.Cmp(qb) == 0
}

func TestSubset(t *testing.T) {
	for _, c := range []struct {
		want, got string
		ok        bool
	}{
		{`{a: 1, b: {c: x}}`, `{a: 1, b: {c: x, d: y}, e: 2}`, true},
		{`{a: 1}`, `{a: 2}`, false},
		{`{a: {b: x}}`, `{a: {}}`, false},
		{`{a: [1, 2]}`, `{a: [1, 2, 3]}`, false},
		{`{a: [{n: x}]}`, `{a: [{n: x, p: TCP}]}`, true},
		{`{cpu: 1, mem: 1Gi}`, `{cpu: "1", mem: 1024Mi}`, true},
		{`{r: {}, l: [], f: false, s: ""}`, `{}`, true},
		{`{f: true}`, `{}`, false},
	} {
		var w, g map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(c.want), &w))
		require.NoError(t, yaml.Unmarshal([]byte(c.got), &g))
		d := subset(w, g, "")
		require.Equal(t, c.ok, d == "", "subset(%s, %s): %s", c.want, c.got, d)
	}
}
