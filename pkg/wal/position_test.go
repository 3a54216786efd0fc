package wal

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPositions pins AppendPos/ReplayPos/ReadAt: every payload can be read
// back at its Position, live and after reopening, across rotations, under
// every sync policy; truncated segments are gone.
func TestPositions(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(string(policy), func(t *testing.T) {
			cfg := Config{Dir: t.TempDir(), SegmentSize: 4096, SyncPolicy: policy, SyncInterval: DefaultSyncInterval}
			w, err := Open(cfg, nil, nil)
			require.NoError(t, err)
			want := map[Position][]byte{}
			for i := 0; i < 200; i++ {
				rec := bytes.Repeat([]byte(fmt.Sprint(i%10)), 1+i%300)
				p, err := w.AppendPos(rec)
				require.NoError(t, err)
				want[p] = rec
				got := make([]byte, len(rec))
				require.NoError(t, w.ReadAt(p.Segment, p.Offset, got), "read back right after append")
				require.Equal(t, rec, got)
			}
			require.Greater(t, w.ActiveSegment(), uint64(2), "records span several segments")
			require.NoError(t, w.Close())

			w, err = Open(cfg, nil, nil)
			require.NoError(t, err)
			seen := 0
			require.NoError(t, w.ReplayPos(func(p Position, rec []byte) error {
				require.Equal(t, want[p], rec)
				got := make([]byte, len(rec))
				require.NoError(t, w.ReadAt(p.Segment, p.Offset, got))
				require.Equal(t, rec, got)
				seen++
				return nil
			}))
			require.Equal(t, len(want), seen)
			require.NoError(t, w.Truncate(2))
			require.Error(t, w.ReadAt(1, SegmentHeaderSize+RecordHeaderSize, make([]byte, 1)), "segment 1 was truncated")
			require.NoError(t, w.Close())
		})
	}
}
