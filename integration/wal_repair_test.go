package integration

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWALTornTailRepaired: after a kill -9, the last WAL segment is torn
// (its tail cut mid-record) or its tail overwritten with garbage. The
// server must start, log a warning, cut the bad tail off, and serve every
// trace whose record lies before it.
func TestWALTornTailRepaired(t *testing.T) {
	for _, damage := range []string{"torn", "garbage"} {
		t.Run(damage, func(t *testing.T) {
			s := startServer(t, options{IdlePeriod: "1h"})
			var kept [][]byte
			for i := 0; i < 5; i++ {
				req, ids := makeRequest(3, 2)
				pushOTLP(t, s.otlpGRPC(), req)
				kept = append(kept, ids...)
			}
			last, lastIDs := makeRequest(3, 2)
			pushOTLP(t, s.otlpGRPC(), last)
			s.kill()

			dir := filepath.Join(s.dir, "wal", "segments")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			names := make([]string, 0, len(entries))
			for _, e := range entries {
				names = append(names, e.Name())
			}
			sort.Strings(names)
			seg := filepath.Join(dir, names[len(names)-1])
			fi, err := os.Stat(seg)
			require.NoError(t, err)
			switch damage {
			case "torn":
				require.NoError(t, os.Truncate(seg, fi.Size()-7))
			case "garbage":
				f, err := os.OpenFile(seg, os.O_WRONLY, 0)
				require.NoError(t, err)
				_, err = f.WriteAt([]byte("\xde\xad\xbe\xef\xde\xad\xbe\xef"), fi.Size()-40)
				require.NoError(t, err)
				require.NoError(t, f.Close())
			}

			s.start()
			require.Contains(t, s.logs.String(), "wal segment corrupt")
			require.Positive(t, s.metric(t, "rubato_wal_corruptions_total"))
			for _, id := range kept {
				require.Equal(t, 2, countSpans(s.traceByID(t, id, "")), "trace %x before the damage", id)
			}
			for _, id := range lastIDs {
				require.Nil(t, s.traceByID(t, id, ""), "the damaged record is dropped whole, never half")
			}
			// The repaired WAL keeps working.
			req, ids := makeRequest(2, 2)
			pushOTLP(t, s.otlpGRPC(), req)
			s.kill()
			s.start()
			for _, id := range append(kept, ids...) {
				require.Equal(t, 2, countSpans(s.traceByID(t, id, "")))
			}
		})
	}
}
