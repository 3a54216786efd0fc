package block

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/cespare/xxhash/v2"
)

// Bloom shard encoding, see FORMAT.md.
const (
	bloomMagic         = "RBLM"
	bloomVersion       = 1
	bloomHashXXH64KM   = 1 // xxhash64 of the 16-byte ID, Kirsch-Mitzenmacher double hashing
	bloomHeaderSize    = 16
	bloomTrailerSize   = 4
	maxBloomK          = 32
	minShardSizeBytes  = bloomHeaderSize + bloomTrailerSize + 8
	shardSalt          = 0x9e3779b97f4a7c15
	maxBloomShardBytes = 1 << 29 // keeps bit positions below 2^32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashID is the 64-bit hash every bloom filter of format v1 is built from:
// xxhash64 of the full ID. Hashing (rather than taking ID bytes) matters
// because 64-bit Zipkin/Jaeger IDs widened to 16 bytes have 8 zero bytes.
func HashID(id []byte) uint64 { return xxhash.Sum64(id) }

// mix64 is the splitmix64 finalizer: a bijection that spreads every input
// bit over the output, used to derive hash values independent of h.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Bloom is a classic bloom filter over 64-bit hashes. It never gives a false
// negative. It is not safe for concurrent Add; Test is read-only.
type Bloom struct {
	k     int
	m     uint64 // bits, a multiple of 64
	words []uint64
}

// NewBloom returns an empty filter sized for n entries at false-positive
// rate fp. n < 1 is treated as 1; fp is clamped to [1e-9, 0.5].
func NewBloom(n int, fp float64) *Bloom {
	m, k := bloomShape(n, fp)
	return newBloomBits(m, k)
}

func newBloomBits(m uint64, k int) *Bloom {
	m = (max(m, 64) + 63) &^ 63
	return &Bloom{k: k, m: m, words: make([]uint64, m/64)}
}

// bloomShape returns the optimal bit count and hash count.
func bloomShape(n int, fp float64) (m uint64, k int) {
	n = max(n, 1)
	fp = min(max(fp, 1e-9), 0.5)
	bits := math.Ceil(-float64(n) * math.Log(fp) / (math.Ln2 * math.Ln2))
	k = int(math.Round(bits / float64(n) * math.Ln2))
	return uint64(max(bits, 64)), min(max(k, 1), maxBloomK)
}

// K returns the number of hash functions.
func (b *Bloom) K() int { return b.k }

// Bits returns the number of bits.
func (b *Bloom) Bits() uint64 { return b.m }

// Add inserts a hash (see HashID).
func (b *Bloom) Add(h uint64) {
	h1, h2 := h, mix64(h)|1
	for i := 0; i < b.k; i++ {
		p := (h1 + uint64(i)*h2) % b.m
		b.words[p>>6] |= 1 << (p & 63)
	}
}

// Test reports whether h may have been added; false means certainly not.
func (b *Bloom) Test(h uint64) bool {
	h1, h2 := h, mix64(h)|1
	for i := 0; i < b.k; i++ {
		p := (h1 + uint64(i)*h2) % b.m
		if b.words[p>>6]&(1<<(p&63)) == 0 {
			return false
		}
	}
	return true
}

// AddID inserts a trace ID.
func (b *Bloom) AddID(id []byte) { b.Add(HashID(id)) }

// TestID reports whether a trace ID may be present.
func (b *Bloom) TestID(id []byte) bool { return b.Test(HashID(id)) }

// sizeBytes is the memory the filter holds, for cache accounting.
func (b *Bloom) sizeBytes() int64 { return int64(len(b.words))*8 + 64 }

// ShardOf returns the bloom shard an ID hash belongs to, in [0, shards).
func ShardOf(h uint64, shards int) int {
	if shards <= 1 {
		return 0
	}
	return int(mix64(h^shardSalt) % uint64(shards))
}

// newShardedBloom sizes shards for n entries at fp so that each encoded
// shard is at most shardBytes long.
func newShardedBloom(n int, fp float64, shardBytes int) []*Bloom {
	m, k := bloomShape(n, fp)
	payload := uint64(min(max(shardBytes, minShardSizeBytes), maxBloomShardBytes) - bloomHeaderSize - bloomTrailerSize)
	payloadBits := payload / 8 * 64 // whole 64-bit words only
	count := int(min((m+payloadBits-1)/payloadBits, MaxBloomShards))
	per := (m + uint64(count) - 1) / uint64(count)
	per = min((per+63)&^63, payloadBits)
	shards := make([]*Bloom, count)
	for i := range shards {
		shards[i] = newBloomBits(per, k)
	}
	return shards
}

// AppendEncode appends the shard encoding of b (FORMAT.md) to dst.
func (b *Bloom) AppendEncode(dst []byte) []byte {
	dst = append(dst, bloomMagic...)
	dst = append(dst, bloomVersion, bloomHashXXH64KM, byte(b.k), 0)
	dst = binary.LittleEndian.AppendUint64(dst, b.m)
	start := len(dst) - bloomHeaderSize
	for _, w := range b.words {
		dst = binary.LittleEndian.AppendUint64(dst, w)
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// DecodeBloomShard decodes one bloom-<n> object. It checks the magic,
// version, hash scheme, k, bit count against the length, and the checksum.
func DecodeBloomShard(b []byte) (*Bloom, error) {
	if len(b) < bloomHeaderSize+bloomTrailerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than header and checksum", ErrInvalidBloom, len(b))
	}
	if string(b[:4]) != bloomMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrInvalidBloom, b[:4])
	}
	if b[4] != bloomVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrInvalidBloom, b[4])
	}
	if b[5] != bloomHashXXH64KM {
		return nil, fmt.Errorf("%w: unknown hash scheme %d", ErrInvalidBloom, b[5])
	}
	k := int(b[6])
	if k < 1 || k > maxBloomK {
		return nil, fmt.Errorf("%w: k %d outside [1, %d]", ErrInvalidBloom, k, maxBloomK)
	}
	m := binary.LittleEndian.Uint64(b[8:16])
	payload := uint64(len(b) - bloomHeaderSize - bloomTrailerSize)
	if m == 0 || m%64 != 0 || m/8 != payload {
		return nil, fmt.Errorf("%w: %d bits do not match %d payload bytes", ErrInvalidBloom, m, payload)
	}
	body := b[:len(b)-bloomTrailerSize]
	if want, got := binary.LittleEndian.Uint32(b[len(body):]), crc32.Checksum(body, castagnoli); want != got {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrInvalidBloom, got, want)
	}
	words := make([]uint64, m/64)
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(body[bloomHeaderSize+8*i:])
	}
	return &Bloom{k: k, m: m, words: words}, nil
}
