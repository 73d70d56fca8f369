// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"bufio"
	"errors"
	"io"
)

// copyDotStream copies a command's input from src to dst: the doveadm
// client sends it right after the command line as a dot stream (lines,
// dot-stuffed, ended by a line holding only "."; Dovecot's ostream-dot),
// and the backend reads it as such, so it is passed on as it is — up to
// and including the ending line and not a byte further, which would be
// the next command, for another user's backend perhaps. Lines may be of
// any length.
func copyDotStream(dst io.Writer, src *bufio.Reader) error {
	atLineStart := true
	for {
		chunk, err := src.ReadSlice('\n')
		if len(chunk) > 0 {
			end := atLineStart && err == nil && (string(chunk) == ".\n" || string(chunk) == ".\r\n")
			if _, werr := dst.Write(chunk); werr != nil {
				return werr
			}
			if end {
				return nil
			}
			atLineStart = chunk[len(chunk)-1] == '\n'
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		}
	}
}

// stickyWriter writes to w until a write fails; from then on it drops
// everything and remembers the first error. The client's input is then
// still read to its end, so that the next command starts where it should.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err == nil {
		_, s.err = s.w.Write(p)
	}
	return len(p), nil
}
