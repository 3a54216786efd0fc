// Package backend is Rubato's object-store abstraction: a flat namespace of
// keys holding immutable byte objects.
//
// Invariants every implementation keeps (pinned by backendtest.AcceptanceTest):
//
//   - Keys are slash-separated relative paths ("tenant/block/meta.json"). A key
//     never starts or ends with "/", and never holds an empty, "." or ".."
//     element; such keys get ErrInvalidKey and touch nothing.
//   - Put is atomic and read-after-write consistent: once Put returns nil, every
//     Get sees the whole new object; a failed or cancelled Put leaves either the
//     old object or nothing, never a partial one. When size >= 0 and r yields
//     a different number of bytes, Put fails.
//   - Get, GetRange and Size on a missing key return an error for which
//     errors.Is(err, ErrNotFound) holds.
//   - GetRange returns exactly length bytes starting at off, or an error
//     (ErrOutOfRange when [off, off+length) is not inside the object, or off
//     or length is negative). length 0 with 0 <= off <= size returns an empty
//     slice.
//   - List is not recursive: it returns the direct children of the "directory"
//     prefix, full keys, sorted ascending by byte order; a child that has
//     children of its own is returned once, with a trailing "/". Listing an
//     absent prefix returns an empty slice and no error.
//   - ListObjects returns the objects (not the "directories") among List's
//     children of dir, in the same order, each with its size and
//     last-modified time. LastModified is the time of the Put that wrote the
//     object (its start or its end, depending on the store: S3 reports when
//     the upload began), so a Put that replaces an object makes it newer.
//     Compare it with the local clock only with a margin for clock skew.
//   - Delete of a missing key is not an error; a deleted key no longer shows in
//     List, nor does a "directory" left without objects.
//   - A key is never also a "directory" of other keys ("a" and "a/b" do not
//     coexist): the local backend cannot represent both, so callers never
//     write such pairs.
//   - All methods are safe for concurrent use.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Errors returned by every Backend.
var (
	// ErrNotFound means the object does not exist.
	ErrNotFound = errors.New("backend: object not found")
	// ErrInvalidKey means a key breaks the naming rules in the package doc.
	ErrInvalidKey = errors.New("backend: invalid key")
	// ErrOutOfRange means a ranged read asked for bytes past the object's end.
	ErrOutOfRange = errors.New("backend: range outside object")
)

// Backend is an object store.
type Backend interface {
	// Put stores size bytes read from r under key, replacing any object there.
	// size may be -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get returns the whole object. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange returns length bytes of the object starting at off.
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	// Size returns the object's length in bytes.
	Size(ctx context.Context, key string) (int64, error)
	// List returns the direct children of dir (see the package doc). dir ""
	// lists the top level.
	List(ctx context.Context, dir string) ([]string, error)
	// ListObjects returns the objects among the direct children of dir,
	// with their sizes and last-modified times (see the package doc).
	ListObjects(ctx context.Context, dir string) ([]ObjectInfo, error)
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// Close releases resources; the Backend is unusable afterwards.
	Close() error
}

// ObjectInfo describes one object, as ListObjects returns it.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// ValidateKey checks a key against the naming rules in the package doc.
func ValidateKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
		for _, c := range el {
			if c < 0x20 || c == 0x7f || c == '\\' {
				return fmt.Errorf("%w: %q", ErrInvalidKey, key)
			}
		}
	}
	return nil
}

// ValidateDir checks a List prefix: "" or a valid key.
func ValidateDir(dir string) error {
	if dir == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(dir, "/"))
}

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, b Backend, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	return data, errors.Join(err, rc.Close())
}

// CheckRange reports whether [off, off+length) lies inside an object of size
// bytes, returning an error wrapping ErrOutOfRange when it does not.
func CheckRange(off, length, size int64) error {
	if off < 0 || length < 0 || off > size || length > size-off {
		return fmt.Errorf("%w: [%d, %d+%d) of %d bytes", ErrOutOfRange, off, off, length, size)
	}
	return nil
}
