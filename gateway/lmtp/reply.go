// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"fmt"
	"strconv"
	"strings"
)

// reply is one SMTP/LMTP reply: a code, an enhanced status code and text.
type reply struct {
	code int
	enh  string // "2.1.5", or "" when the text has none
	text string
}

// result is the reply's class as metrics count a recipient's answer.
func (r reply) result() string {
	switch {
	case r.code < 400:
		return "ok"
	case r.code < 500:
		return "tempfail"
	}
	return "permfail"
}

func (r reply) String() string {
	if r.enh != "" {
		return fmt.Sprintf("%d %s %s", r.code, r.enh, r.text)
	}
	return fmt.Sprintf("%d %s", r.code, r.text)
}

// unsupportedParameters refuses MAIL or RCPT parameters that were not
// announced, in Dovecot's words.
var unsupportedParameters = reply{555, "5.5.4", "Unsupported parameters"}

func (r reply) ok() bool { return r.code >= 200 && r.code < 300 }

// Fixed replies (ARCHITECTURE decision 6: fixed texts, details to the
// log). Our own failures are never 5xx unless the recipient truly does not
// exist: a bug or an outage must not bounce mail.
func tempFail(addr string) reply {
	return reply{451, "4.3.0", fmt.Sprintf("<%s> Temporary internal error", addr)}
}

// routeFail: the director could not place the recipient (its cluster
// store is out of reach, the user is being moved, no backend is up).
// RFC 3463's X.4.3, "directory server failure": the routing layer, not the
// message, is at fault.
func routeFail(addr string) reply {
	return reply{451, "4.4.3", fmt.Sprintf("<%s> Routing temporarily unavailable", addr)}
}

func backendFail(addr string) reply {
	return reply{451, "4.4.0", fmt.Sprintf("<%s> Remote server not answering", addr)}
}

func unknownUser(addr string) reply {
	return reply{550, "5.1.1", fmt.Sprintf("<%s> User doesn't exist: %s", addr, addr)}
}

// parseReply reads the last line of a (possibly multi-line) reply.
func parseReply(lines []string) (reply, error) {
	if len(lines) == 0 {
		return reply{}, fmt.Errorf("empty reply")
	}
	last := lines[len(lines)-1]
	if len(last) < 3 {
		return reply{}, fmt.Errorf("short reply %q", last)
	}
	code, err := strconv.Atoi(last[:3])
	if err != nil || code < 200 || code > 599 {
		return reply{}, fmt.Errorf("bad reply %q", last)
	}
	text := strings.TrimSpace(last[3:])
	r := reply{code: code, text: text}
	if sp := strings.IndexByte(text, ' '); sp > 0 && isEnhanced(text[:sp], code) {
		r.enh, r.text = text[:sp], text[sp+1:]
	} else if isEnhanced(text, code) {
		r.enh, r.text = text, ""
	}
	return r, nil
}

// isEnhanced reports whether s looks like an RFC 3463 code matching the
// reply code's class.
func isEnhanced(s string, code int) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil || len(p) == 0 || len(p) > 3 {
			return false
		}
	}
	return true
}
