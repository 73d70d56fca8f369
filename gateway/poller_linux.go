// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"crypto/tls"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller watches the sockets of idle relay directions with one epoll set,
// so that a session nobody speaks on holds no goroutine at all: a
// goroutine parked in Go's own poller keeps its stack (2 KiB at least,
// more once it has grown), the epoll set keeps a registration in the
// kernel. A socket sits in both sets, Go's (for the reads and writes of
// the copy) and this one (to learn, while no goroutine waits, that there
// is something to copy); the kernel allows a file in several epoll sets.
//
// Each registration is one-shot (EPOLLONESHOT): an event hands its
// direction to a new goroutine, which copies what is ready and arms the
// registration again when the socket has nothing more. The epoll set's
// own descriptor is watched by Go's poller, so that the goroutine
// reading events parks like any other instead of holding a thread in
// epoll_wait.
//
// The set exists while some direction uses it: the first one creates it
// and starts the reading goroutine; once the last one has ended it is
// closed after pollerLinger, so that an idle gateway (or a test's
// Registry) keeps nothing, while one serving logins one at a time does
// not make and close a set (four system calls and a goroutine) for each.
type poller struct {
	mu   sync.Mutex
	epfd int      // valid while file != nil
	file *os.File // epfd, as Go's poller sees it
	// slots holds the directions in the set; an event carries its slot's
	// index and generation, so that a late event for a direction that
	// ended (its slot reused) is recognised and dropped.
	slots []pollSlot
	free  []int32
	used  int
	// linger closes the set once nothing has used it for pollerLinger.
	linger *time.Timer
}

// pollerLinger is how long an unused set stays open.
const pollerLinger = 10 * time.Second

type pollSlot struct {
	d   *direction
	gen uint32
}

// add enters d (whose rc is its source's raw connection) in the table and
// returns its key; d is not armed yet.
func (p *poller) add(d *direction) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.linger != nil {
		p.linger.Stop()
		p.linger = nil
	}
	if p.file == nil {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return 0, errNoPoller
		}
		// Non-blocking, so that os.NewFile hands it to Go's poller.
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return 0, errNoPoller
		}
		p.file = os.NewFile(uintptr(fd), "relay-epoll")
		p.epfd = fd
		rc, err := p.file.SyscallConn()
		if err != nil {
			p.file.Close()
			p.file = nil
			return 0, errNoPoller
		}
		go p.run(rc)
	}
	var i int32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		i = int32(len(p.slots))
		p.slots = append(p.slots, pollSlot{})
	}
	s := &p.slots[i]
	s.gen++
	s.d = d
	p.used++
	return uint64(i) | uint64(s.gen)<<32, nil
}

// remove takes key out of the table (its registration went with the
// socket's close) and closes the set when nothing uses it.
func (p *poller) remove(key uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := int32(key)
	p.slots[i].d = nil
	p.slots[i].gen++
	p.free = append(p.free, i)
	p.used--
	if p.used == 0 && p.linger == nil {
		p.linger = time.AfterFunc(pollerLinger, p.closeUnused)
	}
}

// closeUnused closes the set if nothing has used it since the timer was
// set.
func (p *poller) closeUnused() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used != 0 || p.file == nil || p.linger == nil {
		return
	}
	p.linger = nil
	// Wakes run, which returns. Slots go too: a new set starts empty.
	p.file.Close()
	p.file = nil
	p.slots, p.free = nil, nil
}

// arm asks for one event when d's source is readable (or ends). first is
// true for the direction's first registration. d stays in the table
// meanwhile, so the set is open.
func (p *poller) arm(d *direction, key uint64, first bool) error {
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(key)),
		Pad:    int32(uint32(key >> 32)),
	}
	op := unix.EPOLL_CTL_MOD
	if first {
		op = unix.EPOLL_CTL_ADD
	}
	p.mu.Lock()
	epfd := p.epfd
	p.mu.Unlock()
	var cerr error
	// Control holds the socket open meanwhile: a descriptor number that a
	// concurrent Close freed, and another connection took, is never
	// touched.
	if err := d.rc.Control(func(fd uintptr) { cerr = unix.EpollCtl(epfd, op, int(fd), &ev) }); err != nil {
		return err
	}
	return cerr
}

// run reads events and hands each direction to a goroutine of its own.
func (p *poller) run(rc syscall.RawConn) {
	events := make([]unix.EpollEvent, 64)
	for {
		var n int
		err := rc.Read(func(fd uintptr) bool {
			for {
				var err error
				n, err = unix.EpollWait(int(fd), events, 0)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					n = 0
				}
				// Nothing yet (or a failure, which a closed set turns
				// into Read's error): park in Go's poller until the set
				// is readable.
				return n > 0
			}
		})
		if err != nil {
			return // the set was closed
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			var d *direction
			if i := int(uint32(key)); i < len(p.slots) && p.slots[i].gen == uint32(key>>32) {
				d = p.slots[i].d
			}
			p.mu.Unlock()
			if d != nil && d.state.CompareAndSwap(dirArmed, dirRunning) {
				go d.run(nil)
			}
		}
	}
}

// watchable returns the raw connection of a source the poller can watch:
// a TCP socket, or TLS straight over one (isTLS; crypto/tls may hold
// records the socket no longer shows, see direction.runTLS). Anything
// else (TLS over a PROXY header's reader, which may hold bytes of its
// own) is read by a blocking goroutine.
func watchable(c net.Conn) (rc syscall.RawConn, isTLS bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c, isTLS = tc.NetConn(), true
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, false
	}
	return rc, isTLS
}

// peekReady says, without blocking and without reading, whether the
// source has bytes (true), has ended (false), or has nothing yet
// (errWouldBlock).
func peekReady(rc syscall.RawConn) (ready bool, err error) {
	var one [1]byte
	var peeked int
	var perr error
	cerr := rc.Control(func(fd uintptr) {
		for {
			peeked, _, perr = unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if perr != unix.EINTR {
				break
			}
		}
	})
	switch {
	case cerr != nil:
		return false, cerr
	case perr == unix.EAGAIN:
		return false, errWouldBlock
	case perr != nil:
		return false, perr
	}
	return peeked > 0, nil
}

// setRcvLowat sets the socket's SO_RCVLOWAT: the kernel wakes a reader
// only once n bytes are queued (or the stream ends).
func setRcvLowat(rc syscall.RawConn, n int) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, n)
	}); err != nil {
		return err
	}
	return serr
}
