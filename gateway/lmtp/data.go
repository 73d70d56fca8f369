// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"context"
	"errors"
	"io"
	"net/textproto"
	"sync"
	"time"
)

// data receives the message and streams it to every backend of the
// transaction at once; then each recipient gets its own backend's reply,
// in RCPT order (RFC 2033 4.2). A backend lost on the way turns exactly
// its recipients into 451; the others are not held up by it beyond their
// own backends' pace.
func (s *session) data(_ context.Context) (done bool) {
	switch {
	case !s.inMail:
		s.badReply(reply{503, "5.5.0", "MAIL needed first"})
		return false
	case len(s.rcpts) == 0:
		s.badReply(reply{503, "5.5.0", "No valid recipients"})
		return false
	}
	// From here until the replies are out, a backend may deliver before
	// the client hears of it: a stopping gateway waits for this.
	s.c.SetBusy(true)
	defer s.c.SetBusy(false)
	if s.reply(reply{354, "", "OK"}) != nil {
		return true
	}
	type result struct {
		replies []reply
		err     error
	}
	var (
		groups  []*backend
		pipes   []*io.PipeWriter
		results = map[*backend]*result{}
		wg      sync.WaitGroup
	)
	for _, be := range s.backends {
		if be.failed != nil || len(be.rcpts) == 0 {
			continue
		}
		pr, pw := io.Pipe()
		res := &result{}
		groups, pipes, results[be] = append(groups, be), append(pipes, pw), res
		be.conn.Conn().SetDeadline(time.Now().Add(s.srv.timeout()))
		wg.Add(1)
		go func(be *backend) {
			defer wg.Done()
			res.replies, res.err = be.data(pr)
			// Whatever happened, the reader side is done: a stuck or
			// finished backend must not block the writer.
			pr.CloseWithError(errBackendDone)
		}(be)
	}

	// The client's message, dot-unstuffed, bounded.
	body := textproto.NewReader(s.c.R).DotReader()
	var limited io.Reader = body
	if s.srv.MaxMessageSize > 0 {
		limited = io.LimitReader(body, s.srv.MaxMessageSize+1)
	}
	live := make([]bool, len(pipes))
	for i := range live {
		live[i] = true
	}
	var total int64
	buf := make([]byte, 32*1024)
	var readErr error
	for {
		s.c.Conn().SetReadDeadline(time.Now().Add(s.srv.idle()))
		n, err := limited.Read(buf)
		total += int64(n)
		if s.srv.MaxMessageSize > 0 && total > s.srv.MaxMessageSize {
			readErr = errTooBig
			io.Copy(io.Discard, body) // read the rest so the session stays in step
			break
		}
		for i, pw := range pipes {
			if live[i] && n > 0 {
				if _, werr := pw.Write(buf[:n]); werr != nil {
					live[i] = false
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	for i, pw := range pipes {
		if readErr != nil {
			// No final "." for a message we did not get whole: the backend
			// connection is closed, and the backend discards it.
			pw.CloseWithError(readErr)
		} else if live[i] {
			pw.Close()
		}
	}
	wg.Wait()

	switch {
	case errors.Is(readErr, errTooBig):
		for _, r := range s.rcpts {
			s.c.Printf("%s", reply{552, "5.3.4", "<" + r.addr + "> Message too big"})
			s.srv.Pipeline.Obs().LMTPRecipient("permfail")
		}
		s.failAll()
		s.reset()
		return false
	case readErr != nil:
		s.c.Log.Info("lmtp: client lost during DATA", "reason", readErr)
		s.failAll()
		return true
	}
	for _, be := range groups {
		if res := results[be]; res.err != nil {
			be.failed = res.err
			s.c.Log.Warn("lmtp: backend lost during DATA", "backend", be.target.Addr(), "reason", res.err, "recipients", len(be.rcpts))
		}
	}
	index := map[*rcpt]int{}
	for _, be := range groups {
		for i, r := range be.rcpts {
			index[r] = i
		}
	}
	for _, r := range s.rcpts {
		res := results[r.be]
		var rr reply
		if res == nil || res.err != nil || index[r] >= len(res.replies) {
			rr = backendFail(r.addr)
		} else {
			rr = res.replies[index[r]]
		}
		s.c.Log.Info("lmtp: delivery", "rcpt", r.addr, "to", r.to, "backend", r.be.target.Addr(), "reply", rr.String())
		s.srv.Pipeline.Obs().LMTPRecipient(rr.result())
		s.c.W.WriteString(rr.String() + "\r\n")
	}
	s.c.W.Flush()
	s.reset()
	return false
}

// failAll closes every backend connection without completing DATA.
func (s *session) failAll() {
	for _, be := range s.backends {
		if be.failed == nil {
			be.failed = errAborted
		}
		be.conn.Close()
	}
}

var (
	errBackendDone = errors.New("backend finished")
	errAborted     = errors.New("delivery aborted")
)
