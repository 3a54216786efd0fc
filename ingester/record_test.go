package ingester

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecordRoundTrip(t *testing.T) {
	ids := [][]byte{bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16), bytes.Repeat([]byte{3}, 16)}
	traces := [][]byte{[]byte("aaa"), {}, []byte("cccccc")}
	spans := []uint32{1, 0, 7}
	rec, frags := appendRecord(nil, "tenant-a", ids, traces, spans, []int{0, 2})
	require.Len(t, frags, 2)
	tn, got, err := parseRecord(rec, nil)
	require.NoError(t, err)
	require.Equal(t, "tenant-a", tn)
	require.Equal(t, frags, got)
	require.Equal(t, "cccccc", string(rec[got[1].off:got[1].off+got[1].n]))
	require.Equal(t, uint32(7), got[1].spans)
	for cut := 0; cut < len(rec); cut++ {
		_, _, err := parseRecord(rec[:cut], nil)
		require.Error(t, err, "cut at %d", cut)
	}
	_, _, err = parseRecord(append(rec, 0), nil)
	require.Error(t, err)
}

func TestRecordRejectsBadTenant(t *testing.T) {
	rec, _ := appendRecord(nil, "../x", nil, nil, nil, nil)
	_, _, err := parseRecord(rec, nil)
	require.ErrorIs(t, err, errBadRecord)
}

func FuzzParseRecord(f *testing.F) {
	rec, _ := appendRecord(nil, "t", [][]byte{make([]byte, 16)}, [][]byte{[]byte("x")}, []uint32{1}, []int{0})
	f.Add(rec)
	f.Add([]byte{1, 1, 't', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, rec []byte) {
		tn, frags, err := parseRecord(rec, nil)
		if err != nil {
			return
		}
		require.NotEmpty(t, tn)
		for _, fr := range frags {
			require.LessOrEqual(t, fr.off+fr.n, len(rec))
		}
	})
}
