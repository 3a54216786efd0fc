package block

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// zstdCodec is the zstd compression of data.parquet pages for one Writer.
// parquet-go's own codec keeps its encoders in a pool that every garbage
// collection empties, and each new encoder allocates its history buffers
// again (a sixth of all writer allocations); one Writer keeps one encoder.
// It writes standard zstd frames, so any Parquet reader decodes them.
type zstdCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder // created on first use; the writer never decodes
}

func newZstdCodec() (*zstdCodec, error) {
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
	return &zstdCodec{enc: enc}, nil
}

func (c *zstdCodec) String() string                            { return "ZSTD" }
func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) {
	if c.dec == nil {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		c.dec = d
	}
	return c.dec.DecodeAll(src, dst[:0])
}

func (c *zstdCodec) close() {
	_ = c.enc.Close()
	if c.dec != nil {
		c.dec.Close()
	}
}
