package block

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBloomNoFalseNegativesAndFPRate(t *testing.T) {
	for _, tc := range []struct {
		n  int
		fp float64
	}{{10_000, 0.01}, {10_000, 0.001}, {2_000, 0.05}} {
		rng := seededRand(t, uint64(tc.n))
		b := NewBloom(tc.n, tc.fp)
		ids := make([][]byte, tc.n)
		for i := range ids {
			ids[i] = randBytes(rng, TraceIDSize)
			b.AddID(ids[i])
		}
		for _, id := range ids {
			require.True(t, b.TestID(id))
		}
		const probes = 200_000
		fps := 0
		for i := 0; i < probes; i++ {
			if b.TestID(randBytes(rng, TraceIDSize)) {
				fps++
			}
		}
		rate := float64(fps) / probes
		t.Logf("n=%d fp=%.3f: measured %.4f (k=%d, %d bits)", tc.n, tc.fp, rate, b.K(), b.Bits())
		require.Less(t, rate, tc.fp*1.5)
		require.Greater(t, rate, tc.fp/3)
	}
}

func TestBloom64BitIDs(t *testing.T) {
	// Zipkin/Jaeger 64-bit IDs padded to 16 bytes: high half all zero.
	rng := seededRand(t, 3)
	b := NewBloom(5000, 0.01)
	for i := 0; i < 5000; i++ {
		id := make([]byte, 16)
		copy(id[8:], randBytes(rng, 8))
		b.AddID(id)
	}
	fps := 0
	for i := 0; i < 100_000; i++ {
		id := make([]byte, 16)
		copy(id[8:], randBytes(rng, 8))
		if b.TestID(id) {
			fps++
		}
	}
	require.Less(t, float64(fps)/100_000, 0.015)
}

func TestShardedBloom(t *testing.T) {
	rng := seededRand(t, 9)
	const n = 50_000
	shards := newShardedBloom(n, 0.01, 8*1024)
	require.Greater(t, len(shards), 4)
	var hashes []uint64
	for i := 0; i < n; i++ {
		h := HashID(randBytes(rng, TraceIDSize))
		hashes = append(hashes, h)
		shards[ShardOf(h, len(shards))].Add(h)
	}
	for i, s := range shards {
		enc := s.AppendEncode(nil)
		require.LessOrEqual(t, len(enc), 8*1024)
		dec, err := DecodeBloomShard(enc)
		require.NoError(t, err)
		require.Equal(t, s, dec)
		shards[i] = dec
	}
	for _, h := range hashes {
		require.True(t, shards[ShardOf(h, len(shards))].Test(h))
	}
	fps := 0
	for i := 0; i < 100_000; i++ {
		h := HashID(randBytes(rng, TraceIDSize))
		if shards[ShardOf(h, len(shards))].Test(h) {
			fps++
		}
	}
	require.Less(t, float64(fps)/100_000, 0.015)
}

func TestDecodeBloomShardErrors(t *testing.T) {
	good := NewBloom(100, 0.01)
	good.AddID(bytes.Repeat([]byte{1}, 16))
	enc := good.AppendEncode(nil)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(enc)) }
	cases := map[string][]byte{
		"empty":     nil,
		"short":     enc[:10],
		"magic":     mut(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":   mut(func(b []byte) []byte { b[4] = 9; return b }),
		"hash":      mut(func(b []byte) []byte { b[5] = 9; return b }),
		"k zero":    mut(func(b []byte) []byte { b[6] = 0; return b }),
		"k big":     mut(func(b []byte) []byte { b[6] = 200; return b }),
		"bits":      mut(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[8:], 64); return b }),
		"truncated": enc[:len(enc)-8],
		"checksum":  mut(func(b []byte) []byte { b[20] ^= 1; return b }),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeBloomShard(data)
			require.ErrorIs(t, err, ErrInvalidBloom)
		})
	}
}

func FuzzDecodeBloomShard(f *testing.F) {
	b := NewBloom(10, 0.01)
	b.AddID(bytes.Repeat([]byte{7}, 16))
	f.Add(b.AppendEncode(nil))
	f.Add([]byte("RBLM"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		bl, err := DecodeBloomShard(data)
		if err != nil {
			return
		}
		bl.TestID(data) // must not panic
		require.Equal(t, data, bl.AppendEncode(nil))
	})
}
