// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"bufio"
	"encoding/binary"
	"io"
	"strings"
)

// maxPacket bounds one packet we write; the reader takes any length a
// uint32 can say (the data is streamed, never held whole).
const maxPacket = 64 * 1024

// muxWriter is a doveadm server's output to its client. Once the client
// has authenticated, and when its version's minor is above 0, every write
// is one packet [channel][4-byte big-endian length][data] (Dovecot's
// ostream-multiplex: lib/ostream-multiplex.c); a client of minor 0 gets
// the reply plain and no log lines.
type muxWriter struct {
	w   *bufio.Writer
	mux bool
	// logAtLineStart is false while a log line relayed from a backend has
	// not ended yet: a line of our own must not be glued to it.
	logAtLineStart bool
}

func newMuxWriter(w *bufio.Writer, mux bool) *muxWriter {
	return &muxWriter{w: w, mux: mux, logAtLineStart: true}
}

func (m *muxWriter) packet(channel byte, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), maxPacket)
		var hdr [5]byte
		hdr[0] = channel
		binary.BigEndian.PutUint32(hdr[1:], uint32(n))
		m.w.Write(hdr[:])
		if _, err := m.w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// reply writes bytes of the command's reply (channel 0).
func (m *muxWriter) reply(p []byte) error {
	if !m.mux {
		_, err := m.w.Write(p)
		return err
	}
	return m.packet(0, p)
}

// relayLog passes bytes of a backend's log channel on.
func (m *muxWriter) relayLog(p []byte) error {
	if !m.mux || len(p) == 0 {
		return nil
	}
	m.logAtLineStart = p[len(p)-1] == '\n'
	return m.packet(logChannel, p)
}

// log sends one log line of our own at level (levelError, levelInfo); the
// client prints it as it prints the backend's.
func (m *muxWriter) log(level byte, text string) error {
	if !m.mux {
		return nil
	}
	var b strings.Builder
	if !m.logAtLineStart {
		b.WriteByte('\n')
	}
	for _, l := range strings.Split(text, "\n") {
		b.WriteByte(level)
		b.WriteString(l)
		b.WriteByte('\n')
	}
	m.logAtLineStart = true
	return m.packet(logChannel, []byte(b.String()))
}

// fail ends a command with our own failure: the reason as an error log
// line, then the end of the (empty) output and "-CODE".
func (m *muxWriter) fail(code, reason string) error {
	if reason != "" {
		m.log(levelError, reason)
	}
	m.reply([]byte("\n-" + code + "\n"))
	return m.w.Flush()
}

// demux reads a doveadm server's output: packets when the server's
// version minor is above 0 (Dovecot's istream-multiplex), else the plain
// reply stream on channel 0.
type demux struct {
	r      *bufio.Reader
	mux    bool
	cid    byte
	remain uint32
}

// next reads the next bytes into buf and says which channel they belong
// to. Packets of any channel are returned; the caller drops those it has
// no use for, as Dovecot's reader does.
func (d *demux) next(buf []byte) (channel byte, n int, err error) {
	if !d.mux {
		n, err = d.r.Read(buf)
		return 0, n, err
	}
	for d.remain == 0 {
		var hdr [5]byte
		if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			return 0, 0, err
		}
		d.cid, d.remain = hdr[0], binary.BigEndian.Uint32(hdr[1:])
	}
	if uint32(len(buf)) > d.remain {
		buf = buf[:d.remain]
	}
	n, err = d.r.Read(buf)
	d.remain -= uint32(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return d.cid, n, err
}

// buffered reports whether bytes are waiting already (the caller flushes
// its output only when none are).
func (d *demux) buffered() bool { return d.r.Buffered() > 0 }
