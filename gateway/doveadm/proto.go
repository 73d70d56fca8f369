// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"strconv"
	"strings"

	"github.com/maildirector/maildirector/internal/tabesc"
)

// Version lines. minor 1 brought the multiplexed output with its log
// channel, minor 2 STARTTLS; a Dovecot 2.3 server answers with its own
// minor whatever the client's, as we do.
const (
	protocolMajor = 1
	protocolMinor = 2
	// serverVersionLine is what a client sends a doveadm server.
	serverVersionLine = "VERSION\tdoveadm-server\t1\t2"
	// clientVersionLine is a server's answer to a client with minor > 0.
	clientVersionLine = "VERSION\tdoveadm-client\t1\t2"
)

// logChannel is the multiplexed stream's channel for log lines.
const logChannel = 'L'

// Log levels, the first byte of a log line (doveadm_log_type_to_char).
const (
	levelInfo  = '\x02'
	levelError = '\x04'
)

// Reply codes after "-": the names doveadm_exit_code_to_str gives
// sysexits codes, which the doveadm client turns back into its exit code.
const (
	codeTempFail = "TEMPFAIL" // 75
	codeUsage    = "USAGE"    // 64
	codeNoUser   = "NOUSER"   // 67
	codeNoPerm   = "NOPERM"   // 77
)

// parseVersion reads "VERSION\t<service>\t<major>\t<minor>" as Dovecot's
// version_string_verify_full does: the service and major version must
// match; minor is a decimal number.
func parseVersion(line, service string) (minor int, ok bool) {
	rest, ok := strings.CutPrefix(line, "VERSION\t"+service+"\t")
	if !ok {
		return 0, false
	}
	major, minorStr, ok := strings.Cut(rest, "\t")
	if !ok || major != strconv.Itoa(protocolMajor) || !allDigits(minorStr) {
		return 0, false
	}
	n, err := strconv.Atoi(minorStr)
	if err != nil {
		return 0, false
	}
	return n, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// escape and unescape are Dovecot's tab escaping of fields.
var (
	escape   = tabesc.Escape
	unescape = tabesc.Unescape
)

// splitLine splits a command line into its unescaped fields. An empty line
// has none (t_strsplit_tabescaped).
func splitLine(line string) []string {
	if line == "" {
		return nil
	}
	fields := strings.Split(line, "\t")
	for i, f := range fields {
		fields[i] = unescape(f)
	}
	return fields
}

// joinLine is splitLine's inverse: the fields escaped, tab-separated,
// with the ending newline.
func joinLine(fields []string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(escape(f))
	}
	b.WriteByte('\n')
	return b.String()
}
