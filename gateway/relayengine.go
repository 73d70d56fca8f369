// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A relayed session spends nearly all its life idle (IMAP IDLE, a mail
// client left open), so what an idle session holds matters more than what
// a copied chunk costs. Each way (client to backend, backend to client) is
// a direction. Where its source is a plain TCP socket, a direction holds
// nothing while nothing comes: no goroutine (whose stack would stay), no
// buffer, no splice pipe. The Registry's poller watches the socket; when
// bytes are ready a new goroutine moves them, and those that follow while
// they keep coming (see flow: splicing when the destination is TCP too,
// the pipe going back to the runtime's pool after), and hands the socket
// back to the poller once it has had nothing for a moment. A source that
// cannot be watched that way (TLS: crypto/tls may already hold records;
// elsewhere than Linux) keeps a goroutine blocked in Read with a small
// buffer (copyBlocking).
//
// Whoever ends the session (a side closing, a kick, a stopping server)
// goes through relay.close: closing a watched socket behind the relay's
// back would take it out of the poller's set without an event, and its
// direction would never end.

// relay is one session's copying.
type relay struct {
	// client and backend are the connections (the client's without its
	// PROXY-header reader, see newRelay).
	client, backend net.Conn
	dirs            [2]direction // client to backend ("in"), backend to client ("out")
	live            atomic.Int32 // directions not ended
	closed          atomic.Bool
	reg             *Registry
	sess            *Session
	forgetCut       func()
	end             func(in, out int64)
}

// Direction states. A direction is moved only by whoever takes it out of
// dirArmed (the poller's event, or close) or by the goroutine it runs on.
const (
	dirNew     int32 = iota // not started
	dirRunning              // a goroutine copies
	dirArmed                // waiting in the poller, no goroutine
	dirDone
)

// direction copies one way: the client's bytes to the backend, or (out)
// the backend's to the client.
type direction struct {
	r     *relay
	rc    syscall.RawConn // the source's, while the poller watches it
	key   uint64          // the poller's handle (0: not in its table)
	n     int64           // bytes written
	state atomic.Int32
	out   bool
	added bool // the source is in the poller's set (later arms modify)
	// tls: the source is TLS over the watched socket (see runTLS).
	tls bool
}

// ends returns the direction's source and destination.
func (d *direction) ends() (src, dst net.Conn) {
	if d.out {
		return d.r.backend, d.r.client
	}
	return d.r.client, d.r.backend
}

// errNoPoller: the poller cannot watch sockets here; directions copy
// with a blocking goroutine instead.
var errNoPoller = errors.New("no poller for relayed sessions")

// errWouldBlock: a watched source has nothing to read now.
var errWouldBlock = errors.New("nothing to read yet")

// newRelay prepares the copying between client and backend; start begins
// it. A client connection behind a PROXY header reads first what its
// header reader holds; the relay takes those bytes (see proxyBuffered)
// and reads the socket itself, which the poller can watch.
func newRelay(client, backend net.Conn) *relay {
	if rc, ok := client.(*replayConn); ok {
		if _, ok := rc.r.(*bufio.Reader); ok {
			client = rc.Conn
		}
	}
	return &relay{client: client, backend: backend}
}

// proxyBuffered returns the client's bytes that a PROXY header's reader
// holds (read past the header, not yet taken by the login's reader).
func proxyBuffered(c net.Conn) []byte {
	if rc, ok := c.(*replayConn); ok {
		if br, ok := rc.r.(*bufio.Reader); ok {
			return lingering(br)
		}
	}
	return nil
}

// Close ends the session (for ClientConn.CloseOnCut).
func (r *relay) Close() error {
	r.close()
	return nil
}

// close ends the session: both connections close, directions waiting in
// the poller end, running ones end as their reads and writes fail. end
// is never called from here but from a goroutine of its own, so that
// close may be called with locks held (a stopping server's).
func (r *relay) close() {
	if !r.closed.CompareAndSwap(false, true) {
		return
	}
	r.client.Close()
	r.backend.Close()
	var waiting [2]*direction
	for i := range r.dirs {
		if d := &r.dirs[i]; d.state.CompareAndSwap(dirArmed, dirDone) {
			waiting[i] = d
		}
	}
	if waiting[0] != nil || waiting[1] != nil {
		go func() {
			for _, d := range waiting {
				if d != nil {
					r.ended(d)
				}
			}
		}()
	}
}

// start begins copying, fromClient and fromBackend first (bytes the login
// read ahead), and registers s in reg meanwhile. end gets the bytes moved
// each way once both directions have ended and both connections are
// closed.
func (r *relay) start(fromClient, fromBackend []byte, reg *Registry, s *Session, forgetCut func(), end func(in, out int64)) {
	r.reg, r.sess, r.forgetCut, r.end = reg, s, forgetCut, end
	r.live.Store(2)
	first := [2][]byte{fromClient, fromBackend}
	for i := range r.dirs {
		d := &r.dirs[i]
		d.r, d.out = r, i == 1
		src, _ := d.ends()
		if rc, isTLS := watchable(src); rc != nil {
			d.rc, d.tls = rc, isTLS
			if key, err := reg.poll.add(d); err == nil {
				d.key = key
			} else {
				d.rc = nil
			}
		}
	}
	// A TLS source may hold records already (read past the login's last
	// line): it starts by copying them.
	for i := range r.dirs {
		if d := &r.dirs[i]; d.rc != nil && !d.tls && len(first[i]) == 0 {
			d.arm()
		} else {
			d.state.Store(dirRunning)
			go d.run(first[i])
		}
	}
}

// run writes first, copies while the source has bytes ready, then hands
// the source to the poller; a source the poller does not watch is copied
// until it ends.
func (d *direction) run(first []byte) {
	src, dst := d.ends()
	if len(first) > 0 {
		w, err := dst.Write(first)
		d.n += int64(w)
		if err != nil {
			d.stop()
			return
		}
	}
	if d.rc == nil {
		d.n += copyBlocking(dst, src)
		d.stop()
		return
	}
	if d.tls {
		d.runTLS(src, dst)
		return
	}
	d.flow(src, dst)
}

// flow copies from a plain TCP source while bytes come, then hands the
// socket to the poller.
//
// The first read, right after the poller saw bytes, goes through a
// pooled buffer: a client's command is a few bytes, for which a read and a
// write are the cheapest, and a read steps past TCP's urgent mark, where a
// splice would find nothing to move. If bytes keep coming (a FETCH or an
// APPEND arrives in the sender's write-sized pieces), the rest moves by
// splice where the destination is TCP too: the kernel hands the pages on
// through a pipe, and the gateway copies nothing, which is most of what
// relaying a large message costs it. Each step takes everything queued,
// so several pieces go in one system call when the gateway is behind.
//
// Once bytes have moved, the next are probably on their way, so the
// direction waits a moment (hotWait) for them in Go's poller, where the
// socket already is, before handing it back to ours: an epoll_ctl and a
// new goroutine per piece otherwise.
func (d *direction) flow(src, dst net.Conn) {
	if src.SetReadDeadline(time.Now().Add(hotWait)) != nil {
		d.stop()
		return
	}
	first, err := readPast(src, dst)
	d.n += first
	if errors.Is(err, os.ErrDeadlineExceeded) {
		d.rest() // woken for nothing
		return
	}
	if err != nil {
		d.stop()
		return
	}
	var rf io.ReaderFrom
	if tc, ok := dst.(*net.TCPConn); ok {
		rf = tc
	}
	p := pace{rc: d.rc, run: first}
	var fbp *[]byte // the pooled buffer, while bytes flow without splice
	for {
		if src.SetReadDeadline(time.Now().Add(p.wait())) != nil {
			break
		}
		var w int64
		if rf != nil {
			// Splices until the deadline, the end of the stream, or (not
			// yet bulk) enough bytes to become bulk.
			var from io.Reader = src
			var lr *io.LimitedReader
			if !p.bulk && !p.noMark {
				lr = &io.LimitedReader{R: src, N: max(1, bulkAfter-p.run)}
				from = lr
			}
			w, err = rf.ReadFrom(from)
			if err == nil && (lr == nil || lr.N > 0) {
				// Splice says the stream ended. It also says so at TCP's
				// urgent mark when the sender's FIN follows the mark: a
				// read steps past the mark and tells which it is.
				var n int64
				n, err = readPast(src, dst)
				w += n
			}
		} else {
			if fbp == nil {
				fbp = flowPool.Get().(*[]byte)
			}
			w, err = moveOnce(src, dst, *fbp)
		}
		d.n += w
		timedOut := errors.Is(err, os.ErrDeadlineExceeded)
		if err != nil && !timedOut {
			break // the end of the stream, or a failure
		}
		rest, perr := p.moved(w, timedOut)
		if perr != nil {
			break
		}
		if rest {
			if fbp != nil {
				flowPool.Put(fbp)
			}
			d.rest()
			return
		}
	}
	if fbp != nil {
		flowPool.Put(fbp)
	}
	d.stop()
}

// readPast is moveOnce through a pooled buffer.
func readPast(src, dst net.Conn) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return moveOnce(src, dst, *bp)
}

// moveOnce reads once from src into buf and writes what came to dst; the
// read's error (io.EOF when src has ended) only when nothing came.
func moveOnce(src, dst net.Conn, buf []byte) (int64, error) {
	r, err := src.Read(buf)
	if r == 0 {
		return 0, err
	}
	w, werr := dst.Write(buf[:r])
	return int64(w), werr // a read error, if any, comes again at the next read
}

// flowPool holds the buffers of directions moving bytes without splice.
var flowPool = sync.Pool{New: func() any { b := make([]byte, flowBufSize); return &b }}

// flowBufSize is such a buffer: a bulk flow's bulkLowat bytes, and the
// rest of the socket's queue, in one read.
const flowBufSize = 64 * 1024

// hotWait is how long a direction that just moved bytes waits for more
// before its socket goes to the poller.
const hotWait = 20 * time.Millisecond

// pace is a flowing direction's waiting. Between pieces it waits hotWait.
// Once bulkAfter bytes have moved within one such window (a message
// flowing faster than about 13 MB/s, not commands), it waits bulkWait,
// with the socket's SO_RCVLOWAT at bulkLowat: the kernel then wakes the
// gateway once per bulkLowat bytes queued instead of once per piece the
// sender wrote, and the gateway moves them in one step. A sender writes a
// FETCH in pieces of 8 KiB and less (two write calls per 8 KiB from
// Dovecot), so each wake-up, which costs more than moving the bytes (more
// still in a virtual machine), is spread over eight times the bytes, and
// the receiver behind the gateway is woken as rarely. The end of a
// message, under bulkLowat, waits for bulkWait to pass: half a millisecond
// at the end of a message of more than bulkAfter bytes. A window that
// moves less than bulkLowat ends the bulk flow (the message is over, or it
// trickles, and the mark would only delay it).
// (BenchmarkRelayThroughput/tcp-8K-writes: 1,010–1,170 MB/s without,
// 1,290–1,530 with.)
type pace struct {
	rc   syscall.RawConn
	bulk bool
	// noMark: the socket refused the low mark; the flow stays as it is.
	noMark bool
	run    int64 // bytes moved in the current window's flow
}

const (
	bulkAfter = 256 * 1024
	bulkLowat = 64 * 1024
	bulkWait  = 500 * time.Microsecond
)

func (p *pace) wait() time.Duration {
	if p.bulk {
		return bulkWait
	}
	return hotWait
}

// moved accounts for w bytes moved in a step that timedOut or not, and
// says whether the direction has had nothing for long enough to rest.
// An error means the socket's low mark could not be reset (the poller
// would then not see a client's next command): the session must end.
func (p *pace) moved(w int64, timedOut bool) (rest bool, err error) {
	p.run += w
	switch {
	case !p.bulk && !p.noMark && p.run >= bulkAfter:
		// Not being able to set the mark only costs wake-ups.
		if setRcvLowat(p.rc, bulkLowat) == nil {
			p.bulk = true
		} else {
			p.noMark, p.run = true, 0
		}
	case timedOut && p.bulk && w < bulkLowat:
		// The message is over (or trickles): wake for every byte again,
		// and wait as between pieces before resting.
		p.bulk, p.run = false, 0
		return false, setRcvLowat(p.rc, 1)
	case timedOut && w == 0:
		return true, nil
	case timedOut && !p.bulk:
		// A pause, not a rest: what follows is a new message.
		p.run = 0
	}
	return false, nil
}

// rest hands the socket of a direction that had nothing for hotWait back
// to the poller.
func (d *direction) rest() {
	src, _ := d.ends()
	if src.SetReadDeadline(time.Time{}) != nil {
		d.stop()
		return
	}
	d.arm()
}

// runTLS copies from a TLS source whose socket the poller watches: what
// crypto/tls holds first, then, while the socket has bytes, a read that
// waits for the next record (with a small buffer: a record may come in
// pieces); when neither has anything, the socket goes back to the poller.
func (d *direction) runTLS(src, dst net.Conn) {
	var small *[]byte
	defer func() {
		if small != nil {
			smallPool.Put(small)
		}
	}()
	for {
		w, err := copyBuffered(dst, src)
		d.n += w
		if err != nil {
			d.stop()
			return
		}
		ready, err := peekReady(d.rc)
		if errors.Is(err, errWouldBlock) {
			d.arm()
			return
		}
		if err != nil || !ready {
			d.stop()
			return
		}
		if small == nil {
			small = smallPool.Get().(*[]byte)
		}
		w, err = copyOnce(dst, src, *small)
		d.n += w
		if err != nil {
			d.stop()
			return
		}
	}
}

// arm hands d to the poller. The caller lets go of d: from here the
// poller's event or close moves it. Where the poller cannot take it (the
// session is closing and the socket is gone, or the kernel refused), d
// copies on a blocking goroutine instead, which ends at once if the
// socket is closed.
func (d *direction) arm() {
	first := !d.added
	d.added = true
	d.state.Store(dirArmed)
	if d.r.reg.poll.arm(d, d.key, first) == nil {
		return
	}
	if d.state.CompareAndSwap(dirArmed, dirRunning) {
		d.rc = nil
		go d.run(nil)
	}
}

// stop ends the session from d's own goroutine (its source ended, or a
// read or write failed) and ends d.
func (d *direction) stop() {
	d.r.close()
	d.state.Store(dirDone)
	d.r.ended(d)
}

// ended counts d out; the last direction out finishes the session.
func (r *relay) ended(d *direction) {
	if d.key != 0 {
		r.reg.poll.remove(d.key)
	}
	if r.live.Add(-1) > 0 {
		return
	}
	r.reg.Remove(r.sess)
	if r.forgetCut != nil {
		r.forgetCut()
	}
	r.end(r.dirs[0].n, r.dirs[1].n)
}
