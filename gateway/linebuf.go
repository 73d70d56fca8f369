// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"io"
	"sync"
)

// The login dialogue's line buffers are reused. Each login used to
// allocate about 90 KiB of them (a 64 KiB backend reader, the client's
// max_line_length reader, two 4 KiB writers) that were garbage a moment
// later, when the relay took over: 80% of the bytes a login allocated
// (pprof), and the collector's work grew with them. They go back when the
// relay starts, from the session's own goroutine, the only one that reads
// them; a login that fails leaves its buffers to the collector, so that
// no path that might still hold a buffer can give it back.

// backendReadSize is the backend reader's buffer: a login's lines
// (greeting, CAPABILITY, the login reply) fit; a longer line is gathered
// by ReadLine, up to maxBackendLine.
const backendReadSize = 4096

// writeSize is the writers' buffer, client and backend.
const writeSize = 4096

// bufPools holds a pool of readers per buffer size (the client reader's
// size is the configured max_line_length) and one of writers.
type bufPools struct {
	readers sync.Map // int → *sync.Pool of *bufio.Reader
	writers sync.Pool
}

var lineBufs bufPools

func (p *bufPools) reader(r io.Reader, size int) *bufio.Reader {
	if pl, ok := p.readers.Load(size); ok {
		if br, ok := pl.(*sync.Pool).Get().(*bufio.Reader); ok {
			br.Reset(r)
			return br
		}
	}
	return bufio.NewReaderSize(r, size)
}

func (p *bufPools) writer(w io.Writer) *bufio.Writer {
	if bw, ok := p.writers.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, writeSize)
}

// put returns r and w (either may be nil) to the pools; the caller owns
// them and drops its references.
func (p *bufPools) put(r *bufio.Reader, w *bufio.Writer) {
	if r != nil {
		r.Reset(nil)
		pl, _ := p.readers.LoadOrStore(r.Size(), new(sync.Pool))
		pl.(*sync.Pool).Put(r)
	}
	if w != nil && w.Size() == writeSize {
		w.Reset(nil)
		p.writers.Put(w)
	}
}
