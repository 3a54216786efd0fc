package receiver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Errors of ReadBody; HTTP receivers answer them with BodyErrorStatus.
var (
	// ErrBodyTooLarge means the body, compressed or decompressed, is over
	// the limit (HTTP 413). Decompression stops at the limit, so a small
	// "zip bomb" costs at most limit bytes of memory.
	ErrBodyTooLarge = errors.New("receiver: request body too large")
	// ErrUnsupportedEncoding means an unknown Content-Encoding (HTTP 415).
	ErrUnsupportedEncoding = errors.New("receiver: unsupported content encoding")
	// ErrBadBody means the body could not be read or decompressed (HTTP 400).
	ErrBadBody = errors.New("receiver: unreadable request body")
)

// ReadBody reads a request body of at most limit bytes, both as sent and
// after undoing its Content-Encoding: identity, gzip (x-gzip), deflate
// (zlib-wrapped, or raw as some clients send), zlib, zstd. Any error wraps
// one of ErrBodyTooLarge, ErrUnsupportedEncoding or ErrBadBody.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: content-length %d over %d bytes", ErrBodyTooLarge, r.ContentLength, limit)
	}
	raw, err := readLimited(r.Body, limit)
	if err != nil {
		return nil, err
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
		return raw, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", ErrBadBody, err)
		}
		return readLimited(zr, limit)
	case "deflate", "zlib":
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			// Raw deflate without the zlib header.
			return readLimited(flate.NewReader(bytes.NewReader(raw)), limit)
		}
		return readLimited(zr, limit)
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(limit)), zstd.WithDecoderMaxWindow(uint64(max(limit, zstd.MinWindowSize))))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrBadBody, err)
		}
		defer zr.Close()
		return readLimited(zr, limit)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedEncoding, enc)
}

func readLimited(rd io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(rd, limit+1))
	if n > limit {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, limit)
	}
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, fmt.Errorf("%w: %w", ErrBodyTooLarge, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	return buf.Bytes(), nil
}

// BodyErrorStatus maps a ReadBody error to an HTTP status code.
func BodyErrorStatus(err error) int {
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnsupportedEncoding):
		return http.StatusUnsupportedMediaType
	}
	return http.StatusBadRequest
}
