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
	for _, pr := range []pushRecord{
		{tenant: "tenant-a"},
		{tenant: "tenant-a", push: 1 << 40, hold: []bool{false, true, true}},
	} {
		rec, frags := appendRecord(nil, pr, ids, traces, spans, []int{0, 2})
		require.Len(t, frags, 2)
		got, err := parseRecord(rec, nil)
		require.NoError(t, err)
		require.Equal(t, "tenant-a", got.tenant)
		require.Equal(t, frags, got.frags)
		require.Equal(t, "cccccc", string(rec[got.frags[1].off:got.frags[1].off+got.frags[1].n]))
		require.Equal(t, uint32(7), got.frags[1].spans)
		require.Equal(t, pr.push, got.frags[0].push)
		require.False(t, got.frags[0].hold)
		require.Equal(t, pr.push != 0, got.frags[1].hold, "hold of request index 2")
		for cut := 0; cut < len(rec); cut++ {
			_, err := parseRecord(rec[:cut], nil)
			require.Error(t, err, "cut at %d", cut)
		}
		_, err = parseRecord(append(rec, 0), nil)
		require.Error(t, err)
	}
}

func TestHeldRecordRoundTrip(t *testing.T) {
	keys := []heldKey{{id: [16]byte{1}, push: 7}, {id: [16]byte{2}, push: 1 << 63}}
	for _, kind := range []byte{recordRelease, recordPromote} {
		rec := appendHeldRecord(nil, kind, "t", keys)
		got, err := parseRecord(rec, nil)
		require.NoError(t, err)
		require.Equal(t, kind, got.kind)
		require.Equal(t, keys, got.keys)
		for cut := 0; cut < len(rec); cut++ {
			_, err := parseRecord(rec[:cut], nil)
			require.Error(t, err, "cut at %d", cut)
		}
	}
}

func TestRecordRejectsBadTenant(t *testing.T) {
	rec, _ := appendRecord(nil, pushRecord{tenant: "../x"}, nil, nil, nil, nil)
	_, err := parseRecord(rec, nil)
	require.ErrorIs(t, err, errBadRecord)
	_, err = parseRecord(appendHeldRecord(nil, recordRelease, "../x", nil), nil)
	require.ErrorIs(t, err, errBadRecord)
}

func FuzzParseRecord(f *testing.F) {
	rec, _ := appendRecord(nil, pushRecord{tenant: "t"}, [][]byte{make([]byte, 16)}, [][]byte{[]byte("x")}, []uint32{1}, []int{0})
	f.Add(rec)
	rec, _ = appendRecord(nil, pushRecord{tenant: "t", push: 9, hold: []bool{true}}, [][]byte{make([]byte, 16)}, [][]byte{[]byte("x")}, []uint32{1}, []int{0})
	f.Add(rec)
	f.Add(appendHeldRecord(nil, recordRelease, "t", []heldKey{{push: 3}}))
	f.Add([]byte{1, 1, 't', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, rec []byte) {
		got, err := parseRecord(rec, nil)
		if err != nil {
			return
		}
		require.NotEmpty(t, got.tenant)
		for _, fr := range got.frags {
			require.LessOrEqual(t, fr.off+fr.n, len(rec))
		}
	})
}
