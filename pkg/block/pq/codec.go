package pq

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// ZstdCodec is the zstd compression of Parquet pages for one file writer.
// parquet-go's own codec keeps its encoders in a pool that every garbage
// collection empties, and each new encoder allocates its history buffers
// again (a sixth of all writer allocations); one writer keeps one encoder.
// It writes standard zstd frames, so any Parquet reader decodes them.
type ZstdCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder // created on first use; the writer never decodes
}

// NewZstdCodec returns a codec with one encoder at the fastest level.
func NewZstdCodec() (*ZstdCodec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &ZstdCodec{enc: enc}, nil
}

func (c *ZstdCodec) String() string                            { return "ZSTD" }
func (c *ZstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *ZstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

func (c *ZstdCodec) Decode(dst, src []byte) ([]byte, error) {
	if c.dec == nil {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		c.dec = d
	}
	return c.dec.DecodeAll(src, dst[:0])
}

// Close releases the encoder and decoder.
func (c *ZstdCodec) Close() {
	_ = c.enc.Close()
	if c.dec != nil {
		c.dec.Close()
	}
}
