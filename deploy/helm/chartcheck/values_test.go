package chartcheck

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	yamlv3 "go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the chart README's values table")

const (
	tableStart = "<!-- values-table:start (generated from values.yaml by deploy/helm/chartcheck: go test -run TestValuesTable -update) -->"
	tableEnd   = "<!-- values-table:end -->"
)

// valueRow is one documented value.
type valueRow struct{ key, typ, def, desc string }

// valuesTable walks values.yaml: a key whose head comment starts with
// "-- " is documented (and is a leaf even if it holds a map or list); a
// mapping without one is walked into. A leaf without a description is an
// error, so every value a user can set is in the README.
func valuesTable(src []byte) ([]valueRow, error) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	var rows []valueRow
	var walk func(n *yamlv3.Node, prefix string) error
	walk = func(n *yamlv3.Node, prefix string) error {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + key
			}
			desc, documented := description(k.HeadComment)
			if !documented && v.Kind == yamlv3.MappingNode && len(v.Content) > 0 {
				if err := walk(v, key); err != nil {
					return err
				}
				continue
			}
			if !documented {
				return fmt.Errorf("values.yaml: %s (line %d) has no `# -- description`", key, k.Line)
			}
			var val any
			if err := v.Decode(&val); err != nil {
				return err
			}
			def, err := json.Marshal(val)
			if err != nil {
				return err
			}
			rows = append(rows, valueRow{key: key, typ: typeOf(v), def: string(def), desc: desc})
		}
		return nil
	}
	if err := walk(doc.Content[0], ""); err != nil {
		return nil, err
	}
	return rows, nil
}

// description joins a "# -- text" head comment (and its continuation lines).
func description(comment string) (string, bool) {
	lines := strings.Split(comment, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		if strings.HasPrefix(l, "-- ") {
			parts := []string{strings.TrimPrefix(l, "-- ")}
			for _, c := range lines[i+1:] {
				parts = append(parts, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(c), "#")))
			}
			return strings.Join(parts, " "), true
		}
	}
	return "", false
}

func typeOf(v *yamlv3.Node) string {
	switch v.Kind {
	case yamlv3.MappingNode:
		return "object"
	case yamlv3.SequenceNode:
		return "list"
	}
	switch v.Tag {
	case "!!int":
		return "int"
	case "!!bool":
		return "bool"
	case "!!float":
		return "float"
	}
	return "string"
}

func renderTable(rows []valueRow) string {
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", r.key, r.typ, strings.ReplaceAll(r.def, "|", `\|`), strings.ReplaceAll(r.desc, "|", `\|`))
	}
	return b.String()
}

// TestValuesTable: the chart README's table is the one values.yaml
// generates (-update rewrites it), and every value is described.
func TestValuesTable(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	rows, err := valuesTable(src)
	require.NoError(t, err)
	require.Greater(t, len(rows), 50)
	table := renderTable(rows)

	readmePath := filepath.Join(chartDir, "README.md")
	readme, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	before, rest, ok := strings.Cut(string(readme), tableStart)
	require.True(t, ok, "README.md lacks the start marker %q", tableStart)
	_, after, ok := strings.Cut(rest, tableEnd)
	require.True(t, ok, "README.md lacks the end marker %q", tableEnd)
	want := before + tableStart + "\n\n" + table + "\n" + tableEnd + after
	if *update {
		require.NoError(t, os.WriteFile(readmePath, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, string(readme), "the chart README's values table is stale: run `go test -run TestValuesTable -update` in deploy/helm/chartcheck")
}

// TestValuesTableNeedsDescriptions: an undocumented value fails the
// generator.
func TestValuesTableNeedsDescriptions(t *testing.T) {
	_, err := valuesTable([]byte("a:\n  # -- documented\n  b: 1\n  c: 2\n"))
	require.ErrorContains(t, err, "a.c (line 4)")
	rows, err := valuesTable([]byte("a:\n  # -- first\n  # second\n  b: [x]\n"))
	require.NoError(t, err)
	require.Equal(t, []valueRow{{key: "a.b", typ: "list", def: `["x"]`, desc: "first second"}}, rows)
}
