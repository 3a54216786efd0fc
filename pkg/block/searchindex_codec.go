package block

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strings"
)

// Encoding. All integers are varints (signed: zig-zag), strings are a
// length and bytes; the last 4 bytes are the CRC-32C of the others.

const (
	searchIndexMagic   = "RSIX"
	searchIndexVersion = 1
	// maxSearchIndexSize bounds what a reader accepts.
	maxSearchIndexSize = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func appendStrSet(b []byte, s *strSet) []byte {
	b = appendBool(b, s.overflow)
	vals := s.sorted()
	b = binary.AppendUvarint(b, uint64(len(vals)))
	for _, v := range vals {
		b = appendString(b, v)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendRange(b []byte, r *numRange) []byte {
	b = appendBool(b, r.set)
	b = binary.AppendVarint(b, r.min)
	return binary.AppendVarint(b, r.max)
}

// encode returns the index's bytes.
func (x *searchIndex) encode() []byte {
	b := append([]byte(searchIndexMagic), searchIndexVersion)
	b = binary.AppendUvarint(b, uint64(len(x.rowGroups)))
	for _, rg := range x.rowGroups {
		b = binary.AppendUvarint(b, rg.start)
		b = binary.AppendUvarint(b, rg.end)
	}
	b = append(b, x.statuses, x.kinds)
	b = appendRange(b, &x.durations)
	b = appendRange(b, &x.traceDurations)
	for _, s := range []*strSet{&x.names, &x.statusMsgs, &x.rootNames, &x.rootSvcs} {
		b = appendStrSet(b, s)
	}
	bloomBytes := 0
	for sc := range x.scopes {
		s := &x.scopes[sc]
		b = appendBool(b, s.overflow)
		keys := make([]string, 0, len(s.keys))
		for k := range s.keys {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, key := range keys {
			k := s.keys[key]
			b = appendString(b, key)
			b = append(b, k.kinds)
			b = appendStrSet(b, &k.strs)
			b = appendRange(b, &k.ints)
			b = appendBool(b, k.intOverflow)
			ints := make([]int64, 0, len(k.intSet))
			for v := range k.intSet {
				ints = append(ints, v)
			}
			slices.Sort(ints)
			b = binary.AppendUvarint(b, uint64(len(ints)))
			for _, v := range ints {
				b = binary.AppendVarint(b, v)
			}
			b = appendBool(b, k.floatSeen)
			b = appendBool(b, k.floatSpecial)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(k.fmin))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(k.fmax))
			b = append(b, k.bools)
			bl := k.bloom
			if bl == nil && k.hashes != nil && k.strs.overflow {
				bl = NewBloom(len(k.hashes), bloomValueFP)
				for h := range k.hashes {
					bl.Add(h)
				}
			}
			if bl == nil || bloomBytes+len(bl.words)*8 > maxBloomBytes {
				b = append(b, 0)
				continue
			}
			bloomBytes += len(bl.words) * 8
			b = append(b, byte(bl.k))
			b = binary.AppendUvarint(b, bl.m)
			for _, w := range bl.words {
				b = binary.LittleEndian.AppendUint64(b, w)
			}
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decoder reads an encoded index; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad bool")
	return false
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items of at least minSize bytes each.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail("count exceeds the data")
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) strSet(s *strSet) {
	s.overflow = d.bool()
	n := d.count(1)
	s.vals = make(map[string]struct{}, n)
	for range n {
		v := d.string()
		s.vals[v] = struct{}{}
		s.bytes += len(v)
	}
}

func (d *decoder) numRange(r *numRange) {
	r.set = d.bool()
	r.min, r.max = d.varint(), d.varint()
	if r.set && r.min > r.max {
		d.fail("range min > max")
	}
}

// decodeSearchIndex decodes an encoded index; corrupt bytes give an error.
func decodeSearchIndex(data []byte) (*searchIndex, error) {
	if len(data) > maxSearchIndexSize {
		return nil, fmt.Errorf("search index is %d bytes, limit %d", len(data), maxSearchIndexSize)
	}
	if len(data) < len(searchIndexMagic)+1+4 || !strings.HasPrefix(string(data), searchIndexMagic) {
		return nil, errors.New("search index: bad magic")
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, errors.New("search index: checksum mismatch")
	}
	if v := body[len(searchIndexMagic)]; v != searchIndexVersion {
		return nil, fmt.Errorf("search index: unknown version %d", v)
	}
	d := &decoder{b: body[len(searchIndexMagic)+1:]}
	x := &searchIndex{}
	n := d.count(2)
	x.rowGroups = make([]rgTimes, n)
	for i := range n {
		x.rowGroups[i] = rgTimes{start: d.uvarint(), end: d.uvarint()}
	}
	x.statuses, x.kinds = d.byte(), d.byte()
	d.numRange(&x.durations)
	d.numRange(&x.traceDurations)
	for _, s := range []*strSet{&x.names, &x.statusMsgs, &x.rootNames, &x.rootSvcs} {
		d.strSet(s)
	}
	for sc := range x.scopes {
		s := &x.scopes[sc]
		s.overflow = d.bool()
		n := d.count(8)
		s.keys = make(map[string]*keyIndex, n)
		for range n {
			key := d.string()
			k := &keyIndex{kinds: d.byte()}
			d.strSet(&k.strs)
			d.numRange(&k.ints)
			k.intOverflow = d.bool()
			ni := d.count(1)
			if ni > 0 {
				k.intSet = make(map[int64]struct{}, ni)
			}
			for range ni {
				k.intSet[d.varint()] = struct{}{}
			}
			k.floatSeen, k.floatSpecial = d.bool(), d.bool()
			k.fmin, k.fmax = math.Float64frombits(d.u64()), math.Float64frombits(d.u64())
			k.bools = d.byte()
			if bk := d.byte(); bk != 0 {
				m := d.uvarint()
				if bk > maxBloomK || m == 0 || m%64 != 0 || m/8 > uint64(len(d.b)) {
					d.fail("bad bloom filter")
					break
				}
				k.bloom = &Bloom{k: int(bk), m: m, words: make([]uint64, m/64)}
				for w := range k.bloom.words {
					k.bloom.words[w] = d.u64()
				}
			}
			if d.err != nil {
				break
			}
			s.keys[key] = k
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("search index: %w", d.err)
	}
	return x, nil
}
