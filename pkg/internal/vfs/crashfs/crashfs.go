package crashfs

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rubatodb/rubato/pkg/internal/vfs"
)

// ErrPowerCut is returned by every operation after the power was cut.
var ErrPowerCut = errors.New("crashfs: power cut")

// Mode says what of the pending (unsynced) state survives a cut.
type Mode int

const (
	// LoseUnsynced keeps exactly what was made durable.
	LoseUnsynced Mode = iota
	// KeepSome also keeps random prefixes of pending writes and name
	// changes, as described in the package documentation.
	KeepSome
)

func (m Mode) String() string {
	if m == KeepSome {
		return "keep-some"
	}
	return "lose-unsynced"
}

// node is an inode: a file or a directory.
type node struct {
	dir   bool
	mtime time.Time

	// File. data is what reads see. The durable contents are
	// data[:syncedLen] unless a write or truncation touched that range
	// since the last Sync, in which case they were saved in syncedSnap.
	data       []byte
	syncedLen  int
	syncedSnap []byte
	snapped    bool

	// Directory. entries is what lookups see; durable is the state at the
	// last Sync of the directory and pending the changes since, in order.
	entries map[string]*node
	durable map[string]*node
	pending []dirOp
}

// dirOp is one name change in a directory: bind name to n (n nil: unbind),
// and for a rename also unbind from.
type dirOp struct {
	name string
	n    *node
	from string
}

func newDir() *node {
	return &node{dir: true, entries: map[string]*node{}, durable: map[string]*node{}, mtime: time.Now()}
}

// FS is the simulated file system. Safe for concurrent use.
type FS struct {
	mu    sync.Mutex
	root  *node
	ops   int64 // mutating operations so far
	cutAt int64 // cut when ops reaches it; 0: never
	cut   bool
	syncs map[string]int // fsyncs per path, for tests
}

var _ vfs.FS = (*FS)(nil)

// New returns an empty file system: a root directory only, durable.
func New() *FS { return &FS{root: newDir(), syncs: map[string]int{}} }

// Ops returns the number of mutating operations (create, write, truncate,
// sync, mkdir, rename, remove) so far.
func (c *FS) Ops() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops
}

// Syncs returns how many times name (as passed to OpenFile) was fsynced.
func (c *FS) Syncs(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncs[clean(name)]
}

// CutAtOp arms a power cut that happens instead of mutating operation
// number n (counting from 1 since New): that operation and all later ones
// fail. n <= current Ops cuts at the next operation.
func (c *FS) CutAtOp(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutAt = max(n, c.ops+1)
}

// Cut cuts the power now.
func (c *FS) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
}

// IsCut reports whether the power was cut.
func (c *FS) IsCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// mutate counts one mutating operation and reports ErrPowerCut if the power
// is (now) off. Called with mu held.
func (c *FS) mutate() error {
	if c.cut {
		return ErrPowerCut
	}
	if c.cutAt > 0 && c.ops+1 >= c.cutAt {
		c.cut = true
		return ErrPowerCut
	}
	c.ops++
	return nil
}

func (c *FS) alive() error {
	if c.cut {
		return ErrPowerCut
	}
	return nil
}

// clean turns a name into a slash path relative to the root ("." for it).
func clean(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return "."
	}
	return p[1:]
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// lookup returns the node at name, or nil. Called with mu held.
func (c *FS) lookup(name string) (*node, error) {
	p := clean(name)
	n := c.root
	if p == "." {
		return n, nil
	}
	for _, part := range strings.Split(p, "/") {
		if !n.dir {
			return nil, syscall.ENOTDIR
		}
		n = n.entries[part]
		if n == nil {
			return nil, fs.ErrNotExist
		}
	}
	return n, nil
}

// parentOf returns the directory node holding name and the last element.
func (c *FS) parentOf(name string) (*node, string, error) {
	p := clean(name)
	if p == "." {
		return nil, "", fs.ErrInvalid
	}
	dir, base := path.Split(p)
	d, err := c.lookup(dir)
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", syscall.ENOTDIR
	}
	return d, base, nil
}

// bind records a name change in directory d.
func (d *node) bind(op dirOp) {
	if op.from != "" {
		delete(d.entries, op.from)
	}
	if op.n == nil {
		delete(d.entries, op.name)
	} else {
		d.entries[op.name] = op.n
	}
	d.pending = append(d.pending, op)
	d.mtime = time.Now()
}

// OpenFile implements vfs.FS. Supported flags: O_RDONLY, O_WRONLY, O_RDWR,
// O_CREATE, O_EXCL, O_TRUNC, O_APPEND.
func (c *FS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.alive(); err != nil {
		return nil, pathErr("open", name, err)
	}
	n, err := c.lookup(name)
	switch {
	case err == nil:
		if flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL {
			return nil, pathErr("open", name, fs.ErrExist)
		}
		if n.dir && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
			return nil, pathErr("open", name, syscall.EISDIR)
		}
		if flag&os.O_TRUNC != 0 && !n.dir {
			if err := c.mutate(); err != nil {
				return nil, pathErr("open", name, err)
			}
			n.truncate(0)
		}
	case errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0:
		d, base, err := c.parentOf(name)
		if err != nil {
			return nil, pathErr("open", name, err)
		}
		if err := c.mutate(); err != nil {
			return nil, pathErr("open", name, err)
		}
		n = &node{mtime: time.Now()}
		d.bind(dirOp{name: base, n: n})
	default:
		return nil, pathErr("open", name, err)
	}
	return &file{c: c, n: n, name: clean(name), flag: flag}, nil
}

// Mkdir implements vfs.FS.
func (c *FS) Mkdir(name string, _ fs.FileMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.alive(); err != nil {
		return pathErr("mkdir", name, err)
	}
	d, base, err := c.parentOf(name)
	if err != nil {
		return pathErr("mkdir", name, err)
	}
	if d.entries[base] != nil {
		return pathErr("mkdir", name, fs.ErrExist)
	}
	if err := c.mutate(); err != nil {
		return pathErr("mkdir", name, err)
	}
	d.bind(dirOp{name: base, n: newDir()})
	return nil
}

// Remove implements vfs.FS.
func (c *FS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.alive(); err != nil {
		return pathErr("remove", name, err)
	}
	d, base, err := c.parentOf(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	n := d.entries[base]
	if n == nil {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if n.dir && len(n.entries) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	if err := c.mutate(); err != nil {
		return pathErr("remove", name, err)
	}
	d.bind(dirOp{name: base})
	return nil
}

// Rename implements vfs.FS, within one directory only.
func (c *FS) Rename(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	lerr := func(err error) error { return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err} }
	if err := c.alive(); err != nil {
		return lerr(err)
	}
	d, oldBase, err := c.parentOf(oldname)
	if err != nil {
		return lerr(err)
	}
	d2, newBase, err := c.parentOf(newname)
	if err != nil {
		return lerr(err)
	}
	if d != d2 {
		return lerr(syscall.EXDEV)
	}
	n := d.entries[oldBase]
	if n == nil {
		return lerr(fs.ErrNotExist)
	}
	if old := d.entries[newBase]; old != nil && old.dir {
		return lerr(syscall.EISDIR)
	}
	if oldBase == newBase {
		return nil
	}
	if err := c.mutate(); err != nil {
		return lerr(err)
	}
	d.bind(dirOp{name: newBase, n: n, from: oldBase})
	return nil
}

// Stat implements vfs.FS. There are no symbolic links, so it is Lstat.
func (c *FS) Stat(name string) (fs.FileInfo, error) { return c.Lstat(name) }

// Lstat implements vfs.FS.
func (c *FS) Lstat(name string) (fs.FileInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.alive(); err != nil {
		return nil, pathErr("stat", name, err)
	}
	n, err := c.lookup(name)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return n.info(path.Base(clean(name))), nil
}

// ReadDir implements vfs.FS.
func (c *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.alive(); err != nil {
		return nil, pathErr("readdir", name, err)
	}
	n, err := c.lookup(name)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	if !n.dir {
		return nil, pathErr("readdir", name, syscall.ENOTDIR)
	}
	return n.list(), nil
}

// list returns the entries of directory n sorted by name.
func (n *node) list() []fs.DirEntry {
	names := make([]string, 0, len(n.entries))
	for name := range n.entries {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]fs.DirEntry, len(names))
	for i, name := range names {
		out[i] = fs.FileInfoToDirEntry(n.entries[name].info(name))
	}
	return out
}

// write puts p at off, zero-filling any gap. Called with mu held.
func (n *node) write(p []byte, off int64) {
	if int(off) < n.syncedLen {
		n.snapshot()
	}
	end := int(off) + len(p)
	if end > len(n.data) {
		n.data = slices.Grow(n.data, end-len(n.data))[:end]
	}
	copy(n.data[off:], p)
	n.mtime = time.Now()
}

func (n *node) truncate(size int64) {
	if int(size) < n.syncedLen {
		n.snapshot()
	}
	if int(size) <= len(n.data) {
		// Zero what is cut off, in case a later extension shows it again.
		clear(n.data[size:])
		n.data = n.data[:size]
	} else {
		n.data = append(n.data, make([]byte, int(size)-len(n.data))...)
	}
	n.mtime = time.Now()
}

// snapshot saves the durable contents before the range they live in is
// modified.
func (n *node) snapshot() {
	if !n.snapped {
		n.syncedSnap = slices.Clone(n.data[:n.syncedLen])
		n.snapped = true
	}
}

func (n *node) syncFile() {
	n.syncedLen = len(n.data)
	n.syncedSnap, n.snapped = nil, false
}

func (n *node) syncDir() {
	n.durable = make(map[string]*node, len(n.entries))
	for name, e := range n.entries {
		n.durable[name] = e
	}
	n.pending = nil
}

type fileInfo struct {
	name  string
	size  int64
	dir   bool
	mtime time.Time
}

func (n *node) info(name string) fileInfo {
	return fileInfo{name: name, size: int64(len(n.data)), dir: n.dir, mtime: n.mtime}
}

func (fi fileInfo) Name() string { return fi.name }
func (fi fileInfo) Size() int64  { return fi.size }
func (fi fileInfo) Mode() fs.FileMode {
	if fi.dir {
		return fs.ModeDir | 0o750
	}
	return 0o640
}
func (fi fileInfo) ModTime() time.Time { return fi.mtime }
func (fi fileInfo) IsDir() bool        { return fi.dir }
func (fi fileInfo) Sys() any           { return nil }

// file is an open file or directory.
type file struct {
	c      *FS
	n      *node
	name   string
	flag   int
	off    int64
	dirOff int
	closed bool
}

func (f *file) check(op string, write bool) error {
	if f.closed {
		return pathErr(op, f.name, fs.ErrClosed)
	}
	if err := f.c.alive(); err != nil {
		return pathErr(op, f.name, err)
	}
	if write && (f.n.dir || f.flag&(os.O_WRONLY|os.O_RDWR) == 0) {
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

func (f *file) Read(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.n.dir {
		return 0, pathErr("read", f.name, syscall.EISDIR)
	}
	if f.off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.off:])
	f.off += int64(k)
	return k, nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, fs.ErrInvalid)
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *file) Write(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if err := f.c.mutate(); err != nil {
		return 0, pathErr("write", f.name, err)
	}
	if f.flag&os.O_APPEND != 0 {
		f.off = int64(len(f.n.data))
	}
	f.n.write(p, f.off)
	f.off += int64(len(p))
	return len(p), nil
}

func (f *file) Truncate(size int64) error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, fs.ErrInvalid)
	}
	if err := f.c.mutate(); err != nil {
		return pathErr("truncate", f.name, err)
	}
	f.n.truncate(size)
	return nil
}

func (f *file) Sync() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("sync", false); err != nil {
		return err
	}
	if err := f.c.mutate(); err != nil {
		return pathErr("sync", f.name, err)
	}
	if f.n.dir {
		f.n.syncDir()
	} else {
		f.n.syncFile()
	}
	f.c.syncs[f.name]++
	return nil
}

func (f *file) Stat() (fs.FileInfo, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(f.name)), nil
}

func (f *file) ReadDir(count int) ([]fs.DirEntry, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("readdir", false); err != nil {
		return nil, err
	}
	if !f.n.dir {
		return nil, pathErr("readdir", f.name, syscall.ENOTDIR)
	}
	all := f.n.list()
	rest := all[min(f.dirOff, len(all)):]
	if count <= 0 {
		f.dirOff = len(all)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(count, len(rest))]
	f.dirOff += len(rest)
	return rest, nil
}

// Close never fails for power reasons: closing loses nothing more.
func (f *file) Close() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, fs.ErrClosed)
	}
	f.closed = true
	return nil
}

// Recover returns the disk as it is found after the power cut (or, if
// there was none, after one now): a new FS holding what survives under
// mode, with the random choices of KeepSome drawn from seed. Everything in
// the new FS is durable. The receiver is left cut.
func (c *FS) Recover(mode Mode, seed uint64) *FS {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	r := &recovery{mode: mode, rng: rand.New(rand.NewPCG(seed, 0x5eed)), done: map[*node]*node{}}
	return &FS{root: r.dir(c.root), syncs: map[string]int{}}
}

type recovery struct {
	mode Mode
	rng  *rand.Rand
	done map[*node]*node // an inode survives once, however it is reached
}

func (r *recovery) node(n *node) *node {
	if out := r.done[n]; out != nil {
		return out
	}
	var out *node
	if n.dir {
		out = r.dir(n)
	} else {
		out = &node{data: r.contents(n), mtime: n.mtime}
		out.syncedLen = len(out.data)
	}
	r.done[n] = out
	return out
}

func (r *recovery) dir(n *node) *node {
	names := make(map[string]*node, len(n.durable))
	for name, e := range n.durable {
		names[name] = e
	}
	if r.mode == KeepSome && len(n.pending) > 0 {
		for _, op := range n.pending[:r.rng.IntN(len(n.pending)+1)] {
			if op.from != "" {
				delete(names, op.from)
			}
			if op.n == nil {
				delete(names, op.name)
			} else {
				names[op.name] = op.n
			}
		}
	}
	out := newDir()
	out.mtime = n.mtime
	r.done[n] = out
	for name, e := range names {
		out.entries[name] = r.node(e)
	}
	out.syncDir()
	return out
}

// contents returns what survives of file n's data.
func (r *recovery) contents(n *node) []byte {
	durable := n.data[:n.syncedLen]
	if n.snapped {
		durable = n.syncedSnap
	}
	if r.mode != KeepSome {
		return slices.Clone(durable)
	}
	if n.snapped {
		// A truncation or overwrite is pending: all or nothing of it.
		if r.rng.IntN(2) == 0 {
			return slices.Clone(durable)
		}
		return slices.Clone(n.data)
	}
	// Pure appends pending: a random prefix of them.
	keep := n.syncedLen + r.rng.IntN(len(n.data)-n.syncedLen+1)
	out := slices.Clone(n.data[:keep])
	if keep > n.syncedLen && r.rng.IntN(4) == 0 {
		// The size reached the disk, the last data did not.
		clear(out[n.syncedLen+r.rng.IntN(keep-n.syncedLen):])
	}
	return out
}

// WriteTo writes the file system's current contents into dir, an existing
// directory of the real file system, and fsyncs nothing (it is for tests).
func (c *FS) WriteTo(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return writeTree(c.root, dir)
}

func writeTree(n *node, dir string) error {
	for name, e := range n.entries {
		p := dir + "/" + name
		if e.dir {
			if err := os.Mkdir(p, 0o750); err != nil {
				return err
			}
			if err := writeTree(e, p); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, e.data, 0o640); err != nil {
			return err
		}
	}
	return nil
}
